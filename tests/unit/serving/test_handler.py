from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagedock.serving.errors import (
    BadRequest,
    InferenceError,
    ModelError,
    NotAcceptable,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from sagedock.serving.handler import (
    NO_CONTENT,
    CodeLocation,
    DefaultsRegistry,
    FrameworkDefaults,
    Handler,
    HookFailed,
    HookLayer,
    InferenceContext,
    bind_hook,
    build_handler,
    import_user_module,
)
from sagedock.toolkit.errors import UserError


def layer(source: str = "inference.py", **hooks: Any) -> HookLayer:
    return HookLayer(source, types.MappingProxyType(hooks))


def context(media: Any = None) -> InferenceContext:
    return InferenceContext(
        {"X-Amzn-SageMaker-Custom-Attributes": "a=1"}, None, Path("/m"), 0, "rid", media
    )


# -- binding ----------------------------------------------------------------------------------
def test_hooks_with_and_without_context_are_called_alike() -> None:
    def plain(body, content_type):  # type: ignore[no-untyped-def]
        return ("plain", body)

    def with_context(body, content_type, context):  # type: ignore[no-untyped-def]
        return ("ctx", context.custom_attributes)

    def keyword_context(body, content_type, *, context=None):  # type: ignore[no-untyped-def]
        return ("kw", context.request_id)

    def extra_default(body, content_type, scale=2):  # type: ignore[no-untyped-def]
        return ("extra", scale)

    ctx = context()
    assert bind_hook(plain, "input_fn", "m")(b"x", "t", ctx) == ("plain", b"x")
    assert bind_hook(with_context, "input_fn", "m")(b"x", "t", ctx) == ("ctx", "a=1")
    assert bind_hook(keyword_context, "input_fn", "m")(b"x", "t", ctx) == ("kw", "rid")
    assert bind_hook(extra_default, "input_fn", "m")(b"x", "t", ctx) == ("extra", 2)


def test_ping_fn_may_take_no_arguments() -> None:
    assert bind_hook(lambda: True, "ping_fn", "m")("model", None) is True
    assert bind_hook(lambda model: model, "ping_fn", "m")("model", None) == "model"


def test_a_hook_that_cannot_take_the_arguments_is_a_start_up_error() -> None:
    with pytest.raises(UserError, match=r"predict_fn from m takes 1 argument\(s\)"):
        bind_hook(lambda data: data, "predict_fn", "m")
    with pytest.raises(UserError, match="takes 4 arguments"):
        bind_hook(lambda a, b, c, d: a, "predict_fn", "m")


def test_transform_fn_beside_a_pipeline_hook_is_refused_naming_both() -> None:
    with pytest.raises(UserError, match="defines both transform_fn and input_fn, output_fn"):
        layer(transform_fn=lambda *a: b"", input_fn=lambda *a: 1, output_fn=lambda *a: 1).check()


# -- resolution -------------------------------------------------------------------------------
def test_user_hooks_win_over_the_algorithm_and_both_over_frameworks(tmp_path: Path) -> None:
    user = layer("user", predict_fn=lambda data, model: "user")
    algorithm = layer("algo", predict_fn=lambda data, model: "algo", model_fn=lambda d: "m")
    framework = FrameworkDefaults(
        "fw", lambda d: True, {"model_fn": lambda d: "fw", "input_fn": lambda b, c: "fw"}
    )
    handler = Handler([user, algorithm], frameworks=DefaultsRegistry([framework]))
    chosen = {name: source for name, (_, source) in handler.resolve(tmp_path).items()}
    assert chosen == {"predict_fn": "user", "model_fn": "algo", "input_fn": "fw defaults"}


def test_a_lower_layer_transform_fn_yields_to_higher_pipeline_hooks(tmp_path: Path) -> None:
    user = layer("user", input_fn=lambda body, ct: "parsed")
    algorithm = layer("algo", transform_fn=lambda *a: b"algo", model_fn=lambda d: "m")
    chosen = Handler([user, algorithm]).resolve(tmp_path)
    assert "transform_fn" not in chosen
    assert chosen["input_fn"][1] == "user"
    only_algorithm = Handler([layer("user"), algorithm]).resolve(tmp_path)
    assert only_algorithm["transform_fn"][1] == "algo"


def test_framework_defaults_apply_only_when_exactly_one_framework_matches(tmp_path: Path) -> None:
    hooks = {"model_fn": lambda d: "a", "predict_fn": lambda data, model: model}
    a = FrameworkDefaults("a", lambda d: True, hooks)
    b = FrameworkDefaults("b", lambda d: True, hooks)
    never = FrameworkDefaults("never", lambda d: False, {"model_fn": lambda d: "never"})
    loaded = Handler([], frameworks=DefaultsRegistry([a, never])).load(tmp_path)
    assert loaded.model == "a"
    assert loaded.sources["model_fn"] == "a defaults"
    with pytest.raises(UserError, match="no model_fn"):
        Handler([], frameworks=DefaultsRegistry([a, b])).load(tmp_path)


def test_registering_the_same_framework_twice_is_refused() -> None:
    registry = DefaultsRegistry([FrameworkDefaults("a", lambda d: True, {})])
    with pytest.raises(ValueError, match="registered already"):
        registry.register(FrameworkDefaults("a", lambda d: False, {}))


def test_framework_defaults_may_use_only_the_user_functions_the_handler_knows() -> None:
    registry = DefaultsRegistry()
    with pytest.raises(ValueError, match=r"uses \['make_net'\]"):
        registry.register(
            FrameworkDefaults("a", lambda d: True, {"model_fn": lambda d: 1}, uses=("make_net",))
        )
    with pytest.raises(ValueError, match="needs a model_fn"):
        registry.register(FrameworkDefaults("b", lambda d: True, {}, uses=("build_model",)))


def test_no_model_fn_error_lists_the_model_directory(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(UserError, match=r"no model_fn.*weights\.bin"):
        Handler([]).load(tmp_path)


def test_generic_predict_uses_predict_or_call_and_refuses_neither(tmp_path: Path) -> None:
    class WithPredict:
        def predict(self, data: Any) -> Any:
            return ["predicted", data]

    assert (
        Handler([layer(model_fn=lambda d: WithPredict())])
        .load(tmp_path)
        .invoke(b"[1]", "application/json", None)
        .body
        == b'["predicted",[1]]'
    )
    called = Handler([layer(model_fn=lambda d: lambda data: {"called": data})]).load(tmp_path)
    assert json.loads(called.invoke(b"2", "application/json", None).body) == {"called": 2}
    with pytest.raises(UserError, match="no predict_fn"):
        Handler([layer(model_fn=lambda d: 42)]).load(tmp_path)


def test_load_hooks_run_in_order(tmp_path: Path) -> None:
    calls: list[str] = []
    handler = Handler(
        [
            layer(
                pre_model_fn=lambda d: calls.append("pre"),
                model_fn=lambda d: calls.append("model") or "m",
                model_warmup_fn=lambda d, m: calls.append(f"warm {m}"),
                predict_fn=lambda data, model: data,
            )
        ]
    )
    handler.load(tmp_path)
    assert calls == ["pre", "model", "warm m"]


def test_loading_hooks_get_model_dir_as_a_str_like_aws(tmp_path: Path) -> None:
    (tmp_path / "weights.txt").write_text("42")
    seen: list[Any] = []

    def pre_model_fn(model_dir):  # type: ignore[no-untyped-def]
        seen.append(model_dir)

    def model_fn(model_dir):  # type: ignore[no-untyped-def]
        with open(model_dir + "/weights.txt") as f:  # what AWS users write
            return int(f.read())

    def model_warmup_fn(model_dir, model, context):  # type: ignore[no-untyped-def]
        seen.append((model_dir, model, context.model_dir))

    loaded = Handler(
        [
            layer(
                pre_model_fn=pre_model_fn,
                model_fn=model_fn,
                model_warmup_fn=model_warmup_fn,
                predict_fn=lambda data, model: data,
            )
        ]
    ).load(tmp_path)
    assert loaded.model == 42
    assert seen == [str(tmp_path), (str(tmp_path), 42, tmp_path)]
    assert type(seen[0]) is str


def test_framework_default_model_fns_get_the_str_too(tmp_path: Path) -> None:
    received: list[Any] = []
    framework = FrameworkDefaults(
        "fw",
        lambda d: isinstance(d, Path),
        {"model_fn": lambda d: received.append(d) or "m", "predict_fn": lambda x, m: x},
    )
    Handler([], frameworks=DefaultsRegistry([framework])).load(tmp_path)
    assert received == [str(tmp_path)]


def test_a_failing_model_fn_names_the_hook(tmp_path: Path) -> None:
    def model_fn(model_dir: Path) -> Any:
        raise OSError("disk gone")

    with pytest.raises(HookFailed, match="model_fn failed: OSError: disk gone"):
        Handler([layer(model_fn=model_fn)]).load(tmp_path)


# -- requests ---------------------------------------------------------------------------------
def predictor(tmp_path: Path, **hooks: Any) -> Any:
    hooks.setdefault("model_fn", lambda d: "model")
    hooks.setdefault("predict_fn", lambda data, model: data)
    return Handler([layer(**hooks)]).load(tmp_path)


def test_default_hooks_decode_and_encode_with_the_codecs(tmp_path: Path) -> None:
    p = predictor(tmp_path, predict_fn=lambda data, model: np.asarray(data) * 2)
    reply = p.invoke(b"1,2\n3,4\n", "text/csv", "text/csv")
    assert reply.content_type == "text/csv"
    assert reply.body.decode().split() == ["2.0,4.0", "6.0,8.0"]
    assert p.invoke(b"[1]", None, None).body == b"[2]"  # no headers: JSON both ways


def test_default_errors_are_400_415_406_and_406_is_raised_before_predicting(
    tmp_path: Path,
) -> None:
    predicted: list[Any] = []
    p = predictor(tmp_path, predict_fn=lambda data, model: predicted.append(data) or data)
    with pytest.raises(BadRequest, match="line 1"):
        p.invoke(b"[1,", "application/json", None)
    with pytest.raises(UnsupportedMediaType, match="text/xml"):
        p.invoke(b"<a/>", "text/xml", None)
    with pytest.raises(NotAcceptable, match="text/html"):
        p.invoke(b"[1]", "application/json", "text/html")
    assert predicted == []
    with pytest.raises(BadRequest, match="Content-Type"):
        p.invoke(b"[1]", "not a type", None)


def test_user_input_fn_gets_text_for_json_and_csv_and_params_on_content_type(
    tmp_path: Path,
) -> None:
    seen: list[Any] = []

    def input_fn(body: Any, content_type: Any) -> Any:
        seen.append((body, str(content_type), dict(content_type.params), content_type.header))
        return body

    p = predictor(tmp_path, input_fn=input_fn, output_fn=lambda pred, accept: b"ok")
    p.invoke("é,1".encode("latin-1"), "TEXT/CSV; charset=latin-1; label_size=1", None)
    p.invoke(b"\x00\x01", "application/octet-stream", None)
    assert seen[0] == (
        "é,1",
        "text/csv",
        {"charset": "latin-1", "label_size": "1"},
        "TEXT/CSV; charset=latin-1; label_size=1",
    )
    assert seen[1][0] == b"\x00\x01"
    with pytest.raises(BadRequest, match="not valid utf-8"):
        p.invoke(b"\xff\xfe", "application/json", None)


def test_user_output_fn_gets_the_preferred_accept_and_sets_the_response_type(
    tmp_path: Path,
) -> None:
    p = predictor(tmp_path, output_fn=lambda pred, accept: (accept.header or "", accept))
    for header, expected in [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("text/csv;q=0.2, application/jsonlines", "application/jsonlines"),
    ]:
        reply = p.invoke(b"[1]", "application/json", header)
        assert reply.content_type == expected
        assert reply.body == (header or "").encode()


@pytest.mark.parametrize(
    ("result", "body", "content_type"),
    [
        (b"raw", b"raw", "application/json"),
        ("text", b"text", "application/json"),
        (bytearray(b"ba"), b"ba", "application/json"),
        ((b"x", "application/x-custom"), b"x", "application/x-custom"),
    ],
)
def test_output_forms(tmp_path: Path, result: Any, body: bytes, content_type: str) -> None:
    p = predictor(tmp_path, output_fn=lambda pred, accept: result)
    reply = p.invoke(b"1", "application/json", None)
    assert (reply.body, reply.content_type, reply.streamed) == (body, content_type, False)


def test_an_iterator_result_is_streamed_chunk_by_chunk(tmp_path: Path) -> None:
    def output_fn(prediction: Any, accept: Any) -> Iterator[Any]:
        yield "a"
        yield b""
        yield b"b"

    reply = predictor(tmp_path, output_fn=output_fn).invoke(b"1", "application/json", None)
    assert reply.streamed
    assert list(reply.body) == [b"a", b"b"]


def test_an_unusable_result_is_a_500_saying_what_to_return(tmp_path: Path) -> None:
    p = predictor(tmp_path, output_fn=lambda pred, accept: {"a": 1})
    with pytest.raises(ModelError, match="output_fn returned a dict; return bytes"):
        p.invoke(b"1", "application/json", None)


def test_no_content_from_input_fn_skips_the_other_hooks_and_answers_204(tmp_path: Path) -> None:
    ran: list[str] = []
    p = predictor(
        tmp_path,
        input_fn=lambda body, ct: body or NO_CONTENT,
        predict_fn=lambda data, model: ran.append("predict") or data,
        output_fn=lambda pred, accept: ran.append("output") or pred,
    )
    reply = p.invoke(b"", "application/json", None)
    assert (reply.status, reply.body, ran) == (204, b"", [])
    assert p.invoke(b"[1]", "application/json", None).status == 200
    assert ran == ["predict", "output"]


@pytest.mark.parametrize("hook", ["predict_fn", "output_fn", "transform_fn"])
def test_no_content_from_the_later_hooks_answers_204(tmp_path: Path, hook: str) -> None:
    def no_content(*args: Any) -> Any:
        return NO_CONTENT

    if hook == "transform_fn":
        p = Handler([layer(model_fn=lambda d: "m", transform_fn=no_content)]).load(tmp_path)
    else:
        p = predictor(tmp_path, **{hook: no_content})
    reply = p.invoke(b"[1]", "application/json", None)
    assert (reply.status, reply.body, reply.streamed) == (204, b"", False)


def test_none_from_output_fn_is_a_500_not_a_silent_204(tmp_path: Path) -> None:
    p = predictor(tmp_path, output_fn=lambda pred, accept: None)
    with pytest.raises(ModelError, match=r"output_fn returned a NoneType.*NO_CONTENT \(204\)"):
        p.invoke(b"1", "application/json", None)


def test_user_errors_keep_their_status_and_other_exceptions_name_the_hook(
    tmp_path: Path,
) -> None:
    def predict_fn(data: Any, model: Any) -> Any:
        if data == 1:
            raise InferenceError(429, "slow down")
        raise KeyError("feature_7")

    p = predictor(tmp_path, predict_fn=predict_fn)
    with pytest.raises(InferenceError) as caught:
        p.invoke(b"1", "application/json", None)
    assert (caught.value.status, caught.value.message) == (429, "slow down")
    with pytest.raises(HookFailed) as failed:
        p.invoke(b"2", "application/json", None)
    assert failed.value.status == 500
    assert failed.value.error_type == "ModelError"
    assert failed.value.message == "predict_fn failed: KeyError: 'feature_7'"


def test_transform_fn_gets_model_body_and_headers(tmp_path: Path) -> None:
    def transform_fn(model: Any, body: Any, content_type: Any, accept: Any, context: Any) -> Any:
        return json.dumps([model, body, content_type, accept, context.custom_attributes])

    p = Handler([layer(model_fn=lambda d: "m", transform_fn=transform_fn)]).load(tmp_path)
    reply = p.invoke(b'{"a": 1}', "application/json", "text/csv", lambda media: context(media))
    assert json.loads(reply.body) == ["m", '{"a": 1}', "application/json", "text/csv", "a=1"]
    assert reply.content_type == "text/csv"


def test_ping_fn_false_or_raising_is_503(tmp_path: Path) -> None:
    assert Handler([layer(ping_fn=lambda: True)]).ping("m") is None
    with pytest.raises(ServiceUnavailable, match="unhealthy"):
        Handler([layer(ping_fn=lambda model: False)]).ping("m")
    with pytest.raises(ServiceUnavailable, match="ping_fn failed: RuntimeError: gpu lost"):

        def broken() -> bool:
            raise RuntimeError("gpu lost")

        Handler([layer(ping_fn=broken)]).ping("m")


def test_execution_parameters_fn_overrides_defaults(tmp_path: Path) -> None:
    handler = Handler([layer(execution_parameters_fn=lambda: {"MaxPayloadInMB": 20})])
    assert handler.execution_parameters("m", {"MaxPayloadInMB": 6, "BatchStrategy": "X"}) == {
        "MaxPayloadInMB": 20,
        "BatchStrategy": "X",
    }
    with pytest.raises(ModelError, match="return a dict"):
        Handler([layer(execution_parameters_fn=lambda: 5)]).execution_parameters("m", {})


def test_algorithm_module_defaults_for_accept_and_content_type() -> None:
    module = types.ModuleType("algo")
    module.default_accept = "text/csv"  # type: ignore[attr-defined]
    module.default_content_type = "text/csv"  # type: ignore[attr-defined]
    handler = Handler([HookLayer.from_module(module, "algo")])
    assert (handler.default_accept, handler.default_content_type) == ("text/csv", "text/csv")
    assert (
        Handler(
            [HookLayer.from_module(module, "algo")], default_accept="application/json"
        ).default_accept
        == "application/json"
    )


# -- user modules -----------------------------------------------------------------------------
def test_user_module_imports_its_siblings(tmp_path: Path) -> None:
    (tmp_path / "helper_for_test_handler.py").write_text("VALUE = 3\n")
    (tmp_path / "inference.py").write_text(
        "from helper_for_test_handler import VALUE\ndef model_fn(d): return VALUE\n"
    )
    handler = build_handler(
        CodeLocation(tmp_path, "inference.py"), None, frameworks=DefaultsRegistry()
    )
    assert handler.layers[0].source == str(tmp_path / "inference.py")


def test_a_user_module_that_fails_to_import_names_the_file_and_the_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import sagedock_module_that_does_not_exist\n")
    with pytest.raises(
        UserError,
        match=r"importing .*broken\.py failed: ModuleNotFoundError.*"
        r"requirements\.txt",
    ):
        import_user_module(tmp_path, "broken.py", required=False)


def test_a_missing_module_is_fine_unless_required(tmp_path: Path) -> None:
    assert import_user_module(tmp_path, "inference.py", required=False) is None
    with pytest.raises(UserError, match=r"SAGEMAKER_PROGRAM='entry\.py': no entry\.py"):
        import_user_module(tmp_path, "entry.py", required=True)


def test_unknown_algorithm_lists_the_installed_ones() -> None:
    with pytest.raises(UserError, match=r"unknown algorithm 'no_such_algo'.*xgboost"):
        build_handler(None, "no_such_algo", frameworks=DefaultsRegistry())
