"""Box -> object guided by the project's trained model, in the browser: on a photo where the colours alone mislead
GrabCut (a blue patch pressed against the object), the model that learned the object keeps the patch out, and the
page names the run it used."""

from __future__ import annotations

import numpy as np

from browser_helpers import CANVAS, choose, drag, settle_canvas, shot, wait_text, wait_until
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.store.workspace import new_project
from test_assist import H, W, disc_with_patch

LABELED = 10
EPOCHS = 4         # enough for the small U-Net to tell the disc from the patch on images it did not learn from


def _trained_project(workspace):
    """LABELED photos of the disc with its patch, labelled (the disc only), one more unlabeled, and a small U-Net
    trained on them until it tells the two apart."""
    from seg_core.ml.config import TrainConfig
    from seg_core.ml.training import train
    from seg_core.store.runs import RunStatus

    project = new_project(workspace / "guided", default_classes(["background", "object"]))
    for seed in range(LABELED):
        image, disc, _ = disc_with_patch(seed)
        project.add_image(png_bytes(image), f"disc{seed}.png")
        project.masks.save(seed + 1, disc.astype(np.uint8), 0)
    image, disc, patch = disc_with_patch(LABELED)
    project.add_image(png_bytes(image), "new.png")
    config = TrainConfig(image_size=64, base_filters=8, depth=2, epochs=EPOCHS, batch_size=4, learning_rate=3e-3,
                         early_stopping_patience=0, xla=False)
    run = project.runs.create(config.to_dict())
    status = train(project, run.id, config)
    project.runs.update(run.id, status=status)
    assert status == RunStatus.COMPLETED
    return project, LABELED + 1, disc, patch


def test_a_box_follows_the_projects_model_and_the_page_names_its_run(app_server, page, workspace):
    project, image_id, disc, patch = _trained_project(workspace)
    run = project.runs.best()
    page.goto(f"{app_server.url}/annotate?project=guided&image={image_id}")
    box = settle_canvas(page)

    def at(x: float, y: float) -> tuple[float, float]:
        b = page.locator(CANVAS).first.bounding_box() or box
        return b["x"] + x / W * b["width"], b["y"] + y / H * b["height"]

    def found() -> np.ndarray:
        d = project.drafts.get(image_id)
        return d.ids == 1 if d is not None else np.zeros((H, W), bool)

    choose(page, "annotate_class", "object")
    choose(page, "annotate_tool", "Box → object")
    wait_text(page, f"Use the model from run {run.when}")
    ys, xs = np.nonzero(disc | patch)
    drag(page, [at(xs.min() - 6, ys.min() - 6), at(xs.max() + 6, ys.max() + 6)])
    wait_until(page, lambda: found().sum() > 0.9 * disc.sum(), "Box -> object to find the disc")
    wait_text(page, f"Using the model from run {run.when} for object.")
    shot(page, "assist_prior_box")
    assert (found() & patch).sum() < 0.2 * patch.sum(), "the model should have kept the blue patch out"
