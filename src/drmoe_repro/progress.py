"""Progress of long work: a tqdm bar on a terminal, or plain lines for log files and jobs running side by side.

Every command takes `--no-progress`, and the Snakemake rules and DVC stages always pass it: a bar redraws itself in
place, which a log file keeps as one ever longer line and which several jobs writing to one terminal garble. Without
a bar, though, a paper-profile job would show nothing for many minutes (a 13 GB download, its extraction, an epoch
or an evaluation of 40,000 images), which looks exactly like a hang. So `progress=False` means lines, not silence:
nothing for work that ends within `LINE_EVERY_S`, then a line at most every `LINE_EVERY_S` seconds, and a last one
when the work ends.
"""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

from tqdm import tqdm

LINE_EVERY_S = 60.0
NO_PROGRESS_HELP = ("progress as a plain line at most once a minute instead of a bar (for log files and jobs "
                    "side by side)")
# No bar: what was done, of how much, how long it took, how long it has to go, and the rate. {unit} is glued to
# scaled counts ("1.20GB") and spaced from plain ones ("12/2565 batches").
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt}%s{unit} [{elapsed} elapsed, {remaining} to go, {rate_fmt}{postfix}]"
# Without a total (e.g. a server that sends no length): no time to go.
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt}%s{unit} [{elapsed} elapsed, {rate_fmt}{postfix}]"


class _Lines:
    """A file for tqdm that turns each redraw ('\\r' + status) into one line of `stream`, skipping repeats."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last_count: str | None = None

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        count = line.split(" [", 1)[0]  # the closing redraw repeats the last line with a new rate: drop it
        if line and count != self.last_count:
            self.stream.write(line + "\n")
            self.last_count = count

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable | None = None, *, bars: bool, desc: str, total: float | None = None,
                 initial: float = 0, unit: str = "it", unit_scale: bool = False, leave: bool = True,
                 disable: bool = False, line_every_s: float | None = None) -> tqdm:
    """A tqdm bar (`bars`), or lines on stderr at most every `line_every_s` seconds (default `LINE_EVERY_S`, read
    when called) once the work has taken that long.

    `disable` shows nothing at all (e.g. every DDP process but the first).
    """
    line_every_s = LINE_EVERY_S if line_every_s is None else line_every_s
    common = dict(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale, disable=disable)
    if bars:
        return tqdm(iterable, leave=leave, **common)
    return tqdm(iterable, **common, file=_Lines(sys.stderr), mininterval=line_every_s, delay=line_every_s,
                bar_format=(LINE_FORMAT if total is not None or hasattr(iterable, "__len__") else LINE_FORMAT_NO_TOTAL)
                % ("" if unit_scale else " "))


def format_bytes(count: float) -> str:
    """12.6GB, 121kB: tqdm's own scaling (powers of 1000), as the bars and lines show sizes."""
    return tqdm.format_sizeof(count, "B")
