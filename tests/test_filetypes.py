"""File types come from one registry: a new type is one module that registers itself, and walking,
ingesting, the upload check and the help all take it from there."""

import os
import subprocess
import sys
import textwrap

from rag.reading import filetypes
from rag.errors import FileError
from rag.uploads import check_content, safe_name

from helpers import ROOT

RST_TYPE = textwrap.dedent('''
    """reStructuredText, read as its text: a file type of the user's, in one module."""
    from rag.reading import filetypes


    def load(data, passwords, progress):
        return [data.decode("utf-8")]


    filetypes.register(filetypes.FileType("reStructuredText", (".rst",), load,
                                          lambda data: None if data.isascii() else "is not ASCII text"))
''')
USE_IT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import rst_type  # the registration
    from rag.reading import filetypes
    from rag.config import Settings
    from rag.indexer import ingest
    from rag.uploads import check_content

    check_content("notes.rst", b"Governing law\\n=============\\n\\nDelaware.")
    report = ingest(Path(sys.argv[1]), Settings(index_dir=Path(sys.argv[2]), collection="types"))
    print(json.dumps({"described": filetypes.described(), "files": report.to_dict()["files"]}))
''')


def test_a_new_file_type_is_one_registration(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policy.rst").write_text("Retention policy\n================\n\nRecords are kept for seven years.\n")
    (folder / "notes.txt").write_text("Plain notes.")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "rst_type.py").write_text(RST_TYPE)
    out = subprocess.run([sys.executable, "-c", USE_IT, str(folder), str(tmp_path / "index")], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(plugins)})
    assert out.returncode == 0, out.stderr
    import json

    said = json.loads(out.stdout.splitlines()[-1])
    assert "reStructuredText (.rst)" in said["described"]
    assert {f["path"].rsplit("/", 1)[-1]: f["status"] for f in said["files"]} == {"policy.rst": "ok", "notes.txt": "ok"}


def test_the_registry_answers_for_every_interface():
    assert filetypes.extensions() == [".docx", ".htm", ".html", ".md", ".pdf", ".txt"]
    assert filetypes.for_path("Contract.PDF").paged and not filetypes.for_path("a.md").paged
    assert safe_name("../../etc/Report.PDF") == "Report.pdf"
    for name, data, said in [("a.pdf", b"MZ an executable", "not a PDF"), ("a.md", b"\x00\x01", "binary data")]:
        try:
            check_content(name, data)
        except FileError as e:
            assert said in str(e)
        else:
            raise AssertionError(f"{name} passed its check")
    help_text = subprocess.run([sys.executable, "-m", "rag.cli", "--help"], capture_output=True, text=True,
                               cwd=ROOT).stdout
    assert filetypes.described() in " ".join(help_text.split())  # the help wraps it
