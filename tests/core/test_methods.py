"""The method registry: tied to the analysis schema, FLOP model against torch's FLOP counter, a
user-registered method flowing through every entry point, and a core import graph without cycles."""

import ast
import graphlib
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import relgrad_core
from analysis import schema
from relgrad_core import (
    DenseFlow,
    FlopModel,
    LUFlow,
    MethodSpec,
    backward,
    fit,
    flop_ratio,
    get_method,
    make_flow,
    matrix_flops,
    method_names,
    register_method,
    time_step,
    unregister_method,
)
from relgrad_core.gradients import data_term_direction
from relgrad_core.methods import BUILTIN_METHODS
from relgrad_core.peers import PEER_NAMES, PEERS, installed_peers
from relgrad_core.peers import installed as peer_installed

CORE = Path(relgrad_core.__file__).parent


def test_registry_names_and_order_match_the_analysis_schema():
    # the core's built-in methods are the schema's known ones, in the same display order; methods that
    # users (or benchmarks) register come on top and keep that order among the built-ins
    assert BUILTIN_METHODS == schema.METHOD_ORDER
    assert tuple(m for m in method_names() if m in BUILTIN_METHODS) == schema.METHOD_ORDER
    assert method_names()[0] == schema.REFERENCE_METHOD
    assert schema.FLOOR_METHOD in method_names()
    # the peers (other libraries' flows): the core's table is the schema's, names, libraries and order;
    # those installed here are registered after the built-ins, before anything a user registers
    assert {p.name: p.package for p in PEERS} == schema.PEER_METHODS
    assert tuple(schema.PEER_METHODS) == PEER_NAMES
    installed = [m for m in method_names() if m in PEER_NAMES]
    assert installed == [p.name for p in PEERS if peer_installed(p.package)] == list(installed_peers())
    assert all(get_method(m).peer == schema.PEER_METHODS[m] for m in installed)
    assert all(method_names().index(m) > method_names().index(schema.METHOD_ORDER[-1]) for m in installed)
    assert sorted(method_names(), key=schema.method_sort_key)[: len(BUILTIN_METHODS) + len(installed)] == [
        *BUILTIN_METHODS,
        *installed,
    ]


def test_each_method_trains_its_flow_class():
    for name in method_names():
        flow = make_flow(name, 3, 2, device="cpu")
        assert type(flow) is get_method(name).flow_class
    assert get_method("lu").flow_class is LUFlow and get_method("relative").flow_class is DenseFlow


def test_make_flow_is_reproducible_by_default():
    a, b = make_flow("relative", 5, 2, device="cpu"), make_flow("relative", 5, 2, device="cpu")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def _counted_flops(method: str, batch: int, dim: int, depth: int, base: str = "gaussian") -> float:
    flow = make_flow(method, dim, depth, base=base, device="cpu")
    with FlopCounterMode(display=False) as counter:
        backward(flow, torch.randn(batch, dim), method)
    return counter.get_total_flops()


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("method", ["relative", "mlp", "lu"])
def test_flop_model_matches_torch_flop_counter(method, depth):
    for base in ("gaussian", "laplace"):
        expected = matrix_flops(method, 32, 64, depth, gaussian_base=base == "gaussian")
        assert _counted_flops(method, 32, 64, depth, base) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("method", ["ordinary", "autodiff"])
def test_cubic_methods_share_the_mlp_products_and_add_a_d3_term(method):
    # the FLOP counter sees matrix products only, not inv/slogdet: it must find the MLP's B·D² count
    batch, dim, depth = 32, 64, 2
    spec = get_method(method)
    assert _counted_flops(method, batch, dim, depth) == pytest.approx(
        spec.flops.bd2(depth, True) * batch * dim**2, rel=1e-6
    )
    assert spec.flops.d3(depth) > 0 and flop_ratio(method, depth) == 1.0
    extra = matrix_flops(method, batch, dim, depth) - matrix_flops("mlp", batch, dim, depth)
    assert extra == pytest.approx(spec.flops.d3(depth) * dim**3)


def test_jacobian_model_matches_the_counted_products():
    batch, dim, depth = 8, 24, 2
    spec = get_method("jacobian")
    # torch's counter misses the B factorisations (8/3·B·D³): compare the product part only
    # (the whole step, linear algebra included: tests/core/test_counting.py)
    products = matrix_flops("jacobian", batch, dim, depth) - 8 / 3 * batch * dim**3
    assert _counted_flops("jacobian", batch, dim, depth) == pytest.approx(products, rel=1e-9)
    assert spec.flops.bd3(depth) > 0


def test_flop_ratio_of_the_relative_step():
    assert flop_ratio("relative", 2) == pytest.approx(1.2)
    assert flop_ratio("relative", 2, gaussian_base=False) == pytest.approx(1.4)
    assert flop_ratio("relative", 1000) == pytest.approx(4 / 3, rel=1e-3)
    assert flop_ratio("mlp", 3) == 1.0
    if hasattr(schema, "flop_ratio"):  # while analysis keeps its own copy, the two must agree
        for depth in (1, 2, 5):
            for gaussian in (True, False):
                ours = flop_ratio("relative", depth, gaussian)
                assert schema.flop_ratio(depth, gaussian) == pytest.approx(ours)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        flop_ratio("relative", 0)
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        flop_ratio("newton", 2)


def _halved_direction(flow: DenseFlow, x: torch.Tensor) -> torch.Tensor:
    """Half the MLP's direction: a method no built-in computes."""
    loss = data_term_direction(flow, x)
    for p in flow.parameters():
        p.grad.mul_(0.5)
    return loss


@pytest.fixture
def halved():
    spec = register_method(
        MethodSpec(
            "halved",
            DenseFlow,
            _halved_direction,
            FlopModel(lambda depth, gaussian: 6 * depth - 2),
            order=45,
            cost="O(B·D²)",
        )
    )
    yield spec
    unregister_method("halved")
    assert "halved" not in method_names()


def test_a_registered_method_flows_through_every_entry_point(halved):
    names = method_names()
    assert names.index("lu") < names.index("halved") < names.index("mlp")  # placed by its order, 45
    flow = make_flow("halved", 3, 2, device="cpu")
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    backward(flow, x, "halved")
    halved_grads = [p.grad.clone() for p in flow.parameters()]
    backward(flow, x, "mlp")
    for g, full in zip(halved_grads, flow.parameters(), strict=True):
        torch.testing.assert_close(g, 0.5 * full.grad)
    timing = time_step(flow, x, "halved", warmup=1, repeats=3, measure_memory=False)
    assert timing.repeats >= 3
    history = fit(flow, (x, x), method="halved", lr=1e-3, batch_size=10, max_steps=4)
    assert history.method == "halved" and history.steps == 4
    assert flop_ratio("halved", 2) == 1.0


def test_bad_registrations_are_refused(halved):
    with pytest.raises(ValueError, match="already registered"):
        register_method(halved)
    for bad, match in (
        ({"name": "a,b"}, "method name"),
        ({"name": ""}, "method name"),
        ({"flow_class": torch.nn.Linear}, "flow_class must be a Flow subclass"),
        ({"direction": None}, "direction must be callable"),
        ({"flops": 3}, "flops must be a FlopModel or None"),
        ({"memory": 3}, "memory must be callable"),
        ({"order": True}, "order must be an integer"),
    ):
        fields = {"name": "other", "flow_class": DenseFlow, "direction": _halved_direction}
        fields |= {"flops": FlopModel(lambda depth, gaussian: 1.0)} | bad
        with pytest.raises(ValueError, match=match):
            register_method(MethodSpec(**fields))
    assert "other" not in method_names()
    with pytest.raises(TypeError, match="MethodSpec"):
        register_method("halved")


#: Every package of the product: the no-cycle rule holds across all of them, not just inside the core.
PACKAGES = ("relgrad_core", "study", "analysis", "benchmarks")


def _core_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (CORE.parent / package).rglob("*.py"):
            parts = path.relative_to(CORE.parent).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """The core modules that ``path`` imports anywhere in it (function-level imports included)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                # `from pkg import sub` imports the submodule when there is one, else a name defined by pkg
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {name for name in found if name in modules and name != module}


def test_import_graph_has_no_cycle():
    modules = _core_modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    assert "relgrad_core.flow" in graph["relgrad_core.methods"]  # the parser sees real edges
    assert "relgrad_core.methods" in graph["relgrad_core.training"]
    assert "study.viewing" in graph["study.cli"] and "analysis.schema" in graph["study.trial"]
    tuple(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError naming the cycle


def test_the_cycle_check_would_catch_a_function_level_import(tmp_path):
    module = tmp_path / "flow.py"
    module.write_text("def make():\n    from relgrad_core.methods import get_method\n")
    modules = _core_modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    graph["relgrad_core.flow"] = _imports(module, "relgrad_core.flow", modules)
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(graph).static_order())


def test_unknown_method_names_are_refused():
    with pytest.raises(ValueError, match="unknown method 'newton'; choose one of relative, ordinary"):
        get_method("newton")
    with pytest.raises(ValueError, match="unknown method"):
        make_flow("newton", 3, 2)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        matrix_flops("relative", 0, 128, 2)
