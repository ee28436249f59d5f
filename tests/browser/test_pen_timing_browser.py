"""A stroke drawn right after picking a tool or a class lands in the draft, with the pen the person picked: people
switch pens and draw at once, faster than the page can redraw."""

from __future__ import annotations

import numpy as np
from playwright.sync_api import expect

from browser_helpers import canvas_box, canvas_pixels, drag, settle, settle_canvas, shot, wait_idle, wait_until
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.store.workspace import new_project

H, W = 360, 600
COLS, ROWS = 5, 4
DELAYS_MS = (50, 100, 250)
TOOLS = ("Brush", "Line", "Rectangle", "Ellipse", "Polygon")
CLASSES = ("cat", "dog")
# A second image: four coloured squares for the tools that act on what is under them (Fill last: it fills all).
SQ, SQ_Y0, SQ_X0 = 80, 140, (60, 200, 340, 480)
SQUARE_COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 40))
ACTING_TOOLS = (("Box → object", "dog"), ("Magic wand", "cat"), ("Smart fill", "dog"), ("Fill", "cat"))


def _shape(tool: str, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """The points of one stroke of `tool` inside the cell's box (fractions of the canvas)."""
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    if tool == "Brush":
        return [(x0, y0), (xm, y1), (x1, y0), (x1, y1)]
    if tool == "Line":
        return [(x0, ym), (x1, ym)]
    if tool == "Ellipse":      # dragged from its left edge outwards
        return [(x0, ym), (x1, ym)]
    return [(x0, y0), (x1, y1)]   # a rectangle; a polygon's corners come from the box too


def test_every_stroke_lands_with_the_pen_just_picked(app_server, page, workspace):
    classes = default_classes(["background", *CLASSES])
    project = new_project(workspace / "pens", classes)
    rng = np.random.default_rng(5)
    project.add_image(png_bytes(rng.integers(90, 160, (H, W, 3)).astype(np.uint8)), "floor.png")
    squares = np.full((H, W, 3), 128, np.uint8)
    for k, colour in enumerate(SQUARE_COLOURS):
        squares[SQ_Y0:SQ_Y0 + SQ, SQ_X0[k]:SQ_X0[k] + SQ] = colour
    project.add_image(png_bytes(squares), "squares.png")
    page.goto(f"{app_server.url}/annotate?project=pens")
    settle_canvas(page)
    assert page.evaluate("document.querySelector('.st-key-annotate_class input[type=radio]:checked').value") == "1"
    names = {c.name: c.id for c in classes}

    def at(fx: float, fy: float) -> tuple[float, float]:   # measured each time: the page may have scrolled
        b = canvas_box(page)
        return b["x"] + fx * b["width"], b["y"] + fy * b["height"]

    def cell(i: int) -> tuple[float, float, float, float]:
        c, r = i % COLS, i // COLS
        return (c + .25) / COLS, (r + .25) / ROWS, (c + .75) / COLS, (r + .75) / ROWS

    def draw(tool: str, box) -> None:
        pts = [at(*p) for p in _shape(tool, *box)]
        if tool == "Polygon":
            (ax, ay), (bx, by) = pts
            for x, y in [(ax, ay), (bx, ay), (bx, by), (ax, by), (ax, ay)]:
                page.mouse.click(x, y)
                page.wait_for_timeout(60)
            return
        drag(page, pts)

    def shown_in(box) -> np.ndarray:
        seen = canvas_pixels(page).astype(float)
        h, w = seen.shape[:2]
        x0, y0, x1, y1 = box
        return seen[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]

    def cell_classes(ids: np.ndarray, i: int) -> dict[int, int]:
        x0, y0, x1, y1 = cell(i)
        part = ids[int(y0 * H) - 8:int(y1 * H) + 8, int(x0 * W) - 8:int(x1 * W) + 8]
        values, counts = np.unique(part[part > 0], return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))

    tool, cls = "Brush", "cat"
    expected = []
    for i in range(COLS * ROWS):
        if i % 2 == 0:
            tool = TOOLS[(i // 2 + 1) % len(TOOLS)]
            page.locator(".st-key-annotate_tool").get_by_text(tool, exact=True).click()
        else:
            cls = CLASSES[(i // 2 + 1) % len(CLASSES)]
            page.locator(".st-key-annotate_class").get_by_text(cls, exact=True).click()
        page.wait_for_timeout(DELAYS_MS[i % len(DELAYS_MS)])
        before = shown_in(cell(i))
        draw(tool, cell(i))
        expected.append((tool, cls))
        # The person sees the stroke drawn (it may wait for the page to catch up with the pick) before the next pick.
        wait_until(page, lambda: np.abs(shown_in(cell(i)) - before).mean() > 8, f"stroke {i} on the canvas")

    def all_landed():
        draft = project.drafts.get(1)
        if draft is None:
            return False
        return all(cell_classes(draft.ids, i) for i in range(len(expected)))

    def missing() -> list[str]:
        draft = project.drafts.get(1)
        return [f"{i}: {t} {c}" for i, (t, c) in enumerate(expected)
                if draft is None or not cell_classes(draft.ids, i)]

    try:
        wait_until(page, all_landed, "every stroke in the draft", timeout_ms=45_000)
    except AssertionError:
        assert missing() == []
    finally:
        shot(page, "pen_timing_strokes")
    wait_idle(page)
    ids = project.drafts.get(1).ids
    wrong = {}
    for i, (t, c) in enumerate(expected):
        found = cell_classes(ids, i)
        if max(found, key=found.get) != names[c]:
            wrong[f"{i}: {t} {c}"] = found
    assert wrong == {}
    expect(page.get_by_text("Unsaved strokes", exact=True)).to_be_visible()

    # The tools that act on what is under them, each picked (with a class) and used at once, on coloured squares.
    settle(page)
    page.get_by_role("button", name="Next ▶").click()
    expect(page.get_by_text("squares.png")).to_be_visible()
    settle_canvas(page)

    def square(k: int, pad: float = 0) -> tuple[float, float, float, float]:
        return ((SQ_X0[k] - pad) / W, (SQ_Y0 - pad) / H, (SQ_X0[k] + SQ + pad) / W, (SQ_Y0 + SQ + pad) / H)

    def share(k: int, cls: str) -> float:   # of square k's inside that has class `cls` in the draft
        draft = project.drafts.get(2)
        part = None if draft is None else draft.ids[SQ_Y0 + 10:SQ_Y0 + SQ - 10, SQ_X0[k] + 10:SQ_X0[k] + SQ - 10]
        return 0.0 if part is None else float((part == names[cls]).mean())

    for k, (tool, cls) in enumerate(ACTING_TOOLS):
        page.locator(".st-key-annotate_class").get_by_text(cls, exact=True).click()
        page.locator(".st-key-annotate_tool").get_by_text(tool, exact=True).click()
        page.wait_for_timeout(DELAYS_MS[k % len(DELAYS_MS)])
        x0, y0, x1, y1 = square(k, pad=12 if tool == "Box → object" else 0)
        if tool == "Box → object":
            drag(page, [at(x0, y0), at(x1, y1)])
        elif tool == "Smart fill":   # one class's strokes: kept as a stroke until another class's come
            drag(page, [at(x0 + .01, y0 + .02), at(x1 - .01, y1 - .02), at(x0 + .01, y1 - .02), at(x1 - .01, y0 + .02)])
        else:
            page.mouse.click(*at((x0 + x1) / 2, (y0 + y1) / 2))
        # The whole square; a Smart fill stroke of one class only is kept as a stroke (a zigzag over it).
        try:
            wait_until(page, lambda: share(k, cls) > (0.2 if tool == "Smart fill" else 0.9),
                       f"{tool} with {cls} on square {k}")
        except AssertionError as exc:   # what the squares hold and what the page said tell which pen it landed with
            shot(page, "pen_timing_acting_tools_failed")
            held = {j: {c: round(share(j, c), 2) for c in CLASSES} for j in range(len(SQ_X0))}
            note = page.locator(".st-key-annotate_note").inner_text()
            raise AssertionError(f"{exc}; squares hold {held}; the page says {note!r}") from None
    shot(page, "pen_timing_acting_tools")
    settle(page)
