"""One contract over every registered method (timm-style): the spec describes the function truthfully and its
options dataclass round-trips through the command line's ``--option key=value``.

Independent sources: the function's own signature (``inspect``) for the option names and defaults; the
values written here for the refusals.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods import METHODS, MethodOptions
from hsfuse.methods.options import RUNTIME_ARGUMENTS, describe_options, format_value, parse_options

NAMES = sorted(METHODS)


def _keyword_params(spec):
    params = inspect.signature(spec.function).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize("name", NAMES)
def test_options_are_exactly_the_functions_keyword_options(name):
    spec = METHODS[name]
    assert issubclass(spec.options, MethodOptions) and dataclasses.is_dataclass(spec.options)
    assert spec.options.__dataclass_params__.frozen
    params = _keyword_params(spec)
    fields = {f.name: f.default for f in dataclasses.fields(spec.options)}
    assert set(fields) == set(params) - set(RUNTIME_ARGUMENTS), name
    for key, default in fields.items():
        assert params[key] == default or (params[key] is None and default is None), (name, key)
    assert all(f.metadata.get("help") for f in dataclasses.fields(spec.options)), "every option documented"


@pytest.mark.parametrize("name", NAMES)
def test_spec_fields(name):
    spec = METHODS[name]
    assert spec.needs <= {"psf", "srf", "weights"}
    assert spec.locality == "global" or (isinstance(spec.locality, int) and spec.locality >= 0)
    assert set(spec.devices) <= {"cpu", "cuda"} and "cpu" in spec.devices
    assert spec.halo(4) is None if spec.locality == "global" else spec.halo(4) == 4 * spec.locality
    assert spec.needs_training == ("weights" in _keyword_params(spec))


@pytest.mark.parametrize("name", NAMES)
def test_every_option_round_trips_through_key_value_text(name):
    spec = METHODS[name]
    defaults = spec.options()
    cli_fields = [f for f in dataclasses.fields(spec.options) if f.metadata.get("cli", True)]
    pairs = [f"{f.name}={format_value(getattr(defaults, f.name))}" for f in cli_fields]
    parsed = parse_options(spec.options, pairs, method=name)
    for f in cli_fields:
        assert getattr(parsed, f.name) == getattr(defaults, f.name), (name, f.name)


def _wrong_text(annotation):
    """A text no value of ``annotation`` parses from (None where every text parses, e.g. str)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is str or (origin is not None and str in args):
        return None
    return "@@not-a-value@@"


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keys_and_wrong_types_are_refused(name):
    spec = METHODS[name]
    fields = [f.name for f in dataclasses.fields(spec.options)]
    with pytest.raises(InputError, match="has no option 'no_such_option'; its options are: " + ", ".join(fields)):
        parse_options(spec.options, ["no_such_option=1"], method=name)
    hints = typing.get_type_hints(spec.options)
    for f in dataclasses.fields(spec.options):
        text = _wrong_text(hints[f.name])
        if text is None or not f.metadata.get("cli", True):
            continue
        with pytest.raises(InputError, match=f"option {f.name}="):
            parse_options(spec.options, [f"{f.name}={text}"], method=name)


def test_typed_values_and_python_only_options():
    fuse = METHODS["fuse"].options
    parsed = parse_options(fuse, ["subspace_dim=5", "lam=0.01", "sigma_hsi=0.1,0.2"], method="fuse")
    assert (parsed.subspace_dim, parsed.lam, parsed.sigma_hsi) == (5, 0.01, (0.1, 0.2))
    with pytest.raises(InputError, match="subspace_dim='2.5': expected int"):
        parse_options(fuse, ["subspace_dim=2.5"], method="fuse")
    with pytest.raises(InputError, match="takes an array; set it from Python"):
        parse_options(fuse, ["subspace=1"], method="fuse")
    with pytest.raises(InputError, match="must look like KEY=VALUE"):
        parse_options(fuse, ["lam"], method="fuse")
    udaln = parse_options(METHODS["udaln"].options, ["schedule=fast", "tol_db=none", "learn_psf=false"],
                          method="udaln")
    assert (udaln.schedule, udaln.tol_db, udaln.learn_psf) == ("fast", None, False)
    with pytest.raises(InputError, match="expected 'paper' \\| 'fast'"):
        parse_options(METHODS["udaln"].options, ["schedule=slow"], method="udaln")


def _numeric(annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin is not None:
        return any(_numeric(a) for a in typing.get_args(annotation))
    return annotation in (int, float)


@pytest.mark.parametrize("name", NAMES)
def test_every_numeric_option_declares_its_range_and_values_outside_it_are_refused(name):
    # a new numeric option must state its range, so a bad value is refused before any image is read
    spec = METHODS[name]
    hints = typing.get_type_hints(spec.options)
    for f in dataclasses.fields(spec.options):
        if not _numeric(hints[f.name]) or not f.metadata.get("cli", True):
            continue
        bounds = f.metadata.get("bounds")
        assert bounds, f"{name}.{f.name} declares no range (option(..., ge=/gt=/le=))"
        for _, outside, inside in _outside_and_inside(f, hints[f.name]):
            with pytest.raises(InputError, match=f"option {f.name} of method '{name}' must be "):
                parse_options(spec.options, [f"{f.name}={outside}"], method=name)
            assert getattr(parse_options(spec.options, [f"{f.name}={inside}"], method=name), f.name) == inside


def _outside_and_inside(f, annotation):
    """``(bound kind, a value just outside, the bound or a value just inside)`` for each declared bound."""
    is_int = int in typing.get_args(annotation) or annotation is int
    for kind, bound in f.metadata.get("bounds", {}).items():
        step = 1 if is_int else 1e-9 * max(1.0, abs(bound))
        outside = {"gt": bound, "ge": bound - step, "le": bound + step}[kind]
        inside = {"gt": bound + step, "ge": bound, "le": bound}[kind]
        yield kind, (int(outside) if is_int else float(outside)), (int(inside) if is_int else float(inside))


@pytest.mark.parametrize("name", [n for n in NAMES if not METHODS[n].needs_training])
def test_the_method_functions_refuse_what_their_option_ranges_refuse(name):
    # the declared ranges (checked before any image is read) and the functions' own checks (for Python callers
    # of fuse_<name>) must agree: a value outside a range is refused by the function too, before it computes
    from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf

    torch.manual_seed(0)
    obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0)),
                            SpectralResponse(torch.rand(3, 8), normalize="sum"))
    y = obs.A(torch.rand(1, 8, 16, 16))
    spec = METHODS[name]
    hints = typing.get_type_hints(spec.options)
    for f in dataclasses.fields(spec.options):
        for kind, outside, _ in _outside_and_inside(f, hints[f.name]):
            with pytest.raises(InputError):
                spec.function(y, obs, **{f.name: outside})


def test_range_refusals_name_the_range_and_reach_tuples():
    fuse = METHODS["fuse"].options
    with pytest.raises(InputError, match=r"option lam of method 'fuse' must be > 0, got -1.0"):
        parse_options(fuse, ["lam=-1"], method="fuse")
    with pytest.raises(InputError, match=r"option sigma_hsi of method 'fuse' must be > 0, got \(0.1, 0.0\)"):
        parse_options(fuse, ["sigma_hsi=0.1,0"], method="fuse")
    with pytest.raises(InputError, match="must be a finite number"):
        parse_options(fuse, ["sigma_hsi=0.1,nan"], method="fuse")
    ltmr = parse_options(METHODS["ltmr"].options, ["eta=0", "pad=0"], method="ltmr")  # bounds are inclusive (ge)
    assert (ltmr.eta, ltmr.pad) == (0.0, 0)
    rows = {row["name"]: row for row in describe_options(fuse)}
    assert rows["lam"]["type"] == "float | 'auto' (> 0)"
