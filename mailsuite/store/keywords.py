"""The per-folder ``dovecot-keywords`` file: IMAP keywords as Maildir info letters a-z.

Format (as Dovecot writes it): one line per keyword, ``<index> <name>``; index 0 is letter
``a``, 25 is ``z``. A keyword beyond the 26th cannot be stored in the file name and is refused.
New keywords are added under the folder's uidlist lock and the file is replaced atomically.
"""

from __future__ import annotations

import os

from mailsuite.errors import StoreError

KEYWORDS_FILE = "dovecot-keywords"
MAX_KEYWORDS = 26


class Keywords:
    """The keyword table of one folder."""

    __slots__ = ("_mtime", "names", "path")

    def __init__(self, folder_dir: str) -> None:
        self.path = os.path.join(folder_dir, KEYWORDS_FILE)
        self.names: list[str | None] = []
        self._mtime = -1

    def load(self) -> bool:
        """Re-read the file if it changed; True if it did."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            changed = bool(self.names)
            self.names = []
            self._mtime = -1
            return changed
        if st.st_mtime_ns == self._mtime:
            return False
        names: list[str | None] = [None] * MAX_KEYWORDS
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                idx, _, name = line.rstrip("\n").partition(" ")
                if idx.isdigit() and int(idx) < MAX_KEYWORDS and name:
                    names[int(idx)] = name
        while names and names[-1] is None:
            names.pop()
        self._mtime = st.st_mtime_ns
        self.names = names
        return True

    def letters_of(self, keywords: set[str] | frozenset[str]) -> str | None:
        """The letters for these keywords, or None if some are not in the table yet."""
        out = []
        for keyword in keywords:
            try:
                out.append(chr(ord("a") + self.names.index(keyword)))
            except ValueError:
                return None
        return "".join(sorted(out))

    def keyword_of(self, letter: str) -> str | None:
        """The keyword for a letter, or None if the letter is unassigned."""
        idx = ord(letter) - ord("a")
        if 0 <= idx < len(self.names):
            return self.names[idx]
        return None

    def add(self, keywords: set[str] | frozenset[str]) -> None:
        """Add missing keywords (caller holds the folder lock) and rewrite the file."""
        self._mtime = -1
        self.load()
        missing = [k for k in sorted(keywords) if k not in self.names]
        if not missing:
            return
        names = list(self.names)
        for keyword in missing:
            try:
                names[names.index(None)] = keyword
            except ValueError:
                if len(names) >= MAX_KEYWORDS:
                    raise StoreError(
                        f"too many keywords in this folder (at most {MAX_KEYWORDS})"
                    ) from None
                names.append(keyword)
        text = "".join(f"{i} {n}\n" for i, n in enumerate(names) if n is not None)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)
        self._mtime = -1
        self.load()
