"""README.md of an exported model folder: the model card (model.json) said in plain words for a person."""

from __future__ import annotations


STATUS_WORDS = {"completed": "finished", "stopped": "stopped before its last epoch"}


def _images(n: int | None, word: str = "image") -> str:
    return "an unknown number of images" if n is None else f"{n} {word}" + ("" if n == 1 else "s")


def _score(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def readme(card: dict, format_label: str, example: str) -> str:
    """The README for the folder that holds `card` (model_export.model_card), the model as `format_label` and the
    script `example`; every number in it is the card's, which are the run's record."""
    sections = (_what_it_does(card, format_label), _classes(card), _what_it_takes(card), _run_it(card, example),
                _how_good(card), _learned_from(card))
    return "\n".join(line for section in sections for line in [*section, ""])


def _what_it_does(card: dict, format_label: str) -> list[str]:
    classes = card["classes"]
    found = [c["name"] for c in classes[1:]]
    if len(classes) == 2:
        does = (f"It finds **{found[0]}** in an image: it marks each pixel as {found[0]} or as "
                f"{classes[0]['name']}.")
    else:
        does = (f"It gives each pixel of an image one of {len(classes)} classes: " + ", ".join(
            f"**{c['name']}**" for c in classes) + ".")
    return [f"# {card['project']}: segmentation model from run {card['run']}", "",
            f"{does} Exported by {card['exported_by']} on {card['exported_at'][:10]} as {format_label} "
            f"(`{card['model_file']}`)."]


def _classes(card: dict) -> list[str]:
    table = ["| id | class | colour in the mask |", "| --- | --- | --- |"]
    table += [f"| {c['id']} | {c['name']} | `{c['color']}` |" for c in card["classes"]]
    return ["## Classes", "", *table, "",
            f"A mask the model makes is a PNG the size of the image: each pixel's value is its class id, and it shows "
            f"in the colour above. (Value {card['ignore']['id']} in Maskloop's masks means 'no class'; the model "
            "never gives it.)"]


def _what_it_takes(card: dict) -> list[str]:
    size, channels = card["input"]["size"][0], card["input"]["channels"]
    fit = ("scaled down or up to fit the square with its shape kept, the space left over filled with a mirror "
           "image of its edges; the mask is cut back to the image and resized to its own size"
           if card["preprocessing"]["resize"] == "letterbox" else
           "stretched to the square whatever its shape; the mask is resized back to the image's own size")
    colour = "Colour (RGB)" if channels == 3 else "Grey"
    one = " The model takes one image at a time." if card["format"] == "tflite" else ""
    return ["## What it takes", "",
            f"{colour} images of any size. Each image is resized to {size} x {size} pixels, the size it "
            f"learned at: {fit}.{one} model.json says every step exactly."]


def _run_it(card: dict, example: str) -> list[str]:
    return ["## Run it", "", "```", card["runtime"]["install"], f"python {example} photo.jpg mask.png", "```", "",
            f"`{example}` needs only `{card['runtime']['package']}`, numpy and Pillow (not Maskloop). It reads "
            "photo.jpg and writes mask.png at the photo's size."]


def _how_good(card: dict) -> list[str]:
    v = card["validation"]
    val_n, iou = v.get("images"), v.get("at_best_epoch", {}).get("val_iou")
    return ["## How good it is", "",
            f"Scores on {_images(val_n, 'validation image')} the model did not learn from (your masks are the "
            "answers):", "",
            f"- dice {_score(v.get('best_dice'))} (best, after epoch {v.get('best_epoch') or '-'}): how much the "
            "model's mask and yours overlap, from 0 (not at all) to 1 (exactly);",
            f"- IoU {_score(iou)}: the same overlap counted as intersection over union, also from 0 to 1.", "",
            f"This folder holds the model as it was after epoch {v.get('model_from_epoch') or '-'}."
            + (" With so few validation images the scores are rough: a few more labeled images would make them "
               "trustworthy." if val_n is not None and val_n < 5 else "")]


def _learned_from(card: dict) -> list[str]:
    settings, training, v = card["training"]["settings"], card["training"], card["validation"]
    train_n, val_n = settings.get("train_images"), v.get("images")
    epochs = f"{training['epochs_done']} of {settings.get('epochs')} epochs"
    budget = settings.get("time_budget_minutes")
    ended = STATUS_WORDS.get(training["status"], training["status"])
    return ["## What it learned from", "",
            f"Run {card['run']} of the Maskloop project '{card['project']}' ({settings.get('preset') or 'custom'} "
            f"settings, {settings.get('model')} with {settings.get('base_filters')} filters): {epochs}"
            + (f" in a {budget:g}-minute time budget" if budget else "") + f", {ended}. It "
            + (v["split"] if v.get("split") else
               f"learned from {_images(train_n, 'labeled image')} and was checked on {_images(val_n)}")
            + ". All its settings are in model.json under \"training\"."]
