import importlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_operator_source_root_is_not_a_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_import_operator_is_the_standard_library() -> None:
    mod = importlib.import_module("operator")
    assert hasattr(mod, "itemgetter")
    assert "site-packages" not in (mod.__file__ or "") or "azsnap" not in (mod.__file__ or "")
    assert pathlib.Path(mod.__file__ or "").parent != ROOT / "operator"


def test_every_module_has_a_docstring() -> None:
    for path in (ROOT / "operator" / "azsnap").rglob("*.py"):
        text = path.read_text().lstrip()
        assert text.startswith('"""'), f"{path.relative_to(ROOT)} has no module docstring"
