"""Making one precision's .tflite and running it in LiteRT (inside the exporter's child).

float32 comes first: it is the base that ai-edge-quantizer derives float16, dynamic
and int4 from in milliseconds. Each ai-edge-quantizer result must agree with the
float32 .tflite on the check samples, or the TFLite converter makes that precision
instead (int4 has no converter equivalent: it is kept, with the disagreement noted
for the exporter's warning). int8 and int16x8 come from the converter, calibrated.
Every requested precision then runs on the evaluation samples; the exporter
compares the outputs with the float model's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeopt.convert import engines
from edgeopt.convert.inspect import inspect_tflite
from edgeopt.convert.job import Job
from edgeopt.convert.interpreter import TfliteRunner
from edgeopt.convert.precision import IODtype, Precision
from edgeopt.convert.sparse import choose_float32
from edgeopt.convert.validate import Labels, compare_outputs, disagreement
from edgeopt.errors import ConversionError


def flex_ops(data: bytes) -> list[str]:
    """The Select TF (Flex) ops of a .tflite model, which LiteRT without the Flex delegate cannot run."""
    return sorted(op.removeprefix("CUSTOM:") for op in inspect_tflite(data).op_counts if op.startswith("CUSTOM:Flex"))


def not_runnable(data: bytes) -> str | None:
    """Why this LiteRT cannot run the model, or None."""
    ops = flex_ops(data)
    if not ops:
        return None
    return (f"it has Select TF ops ({', '.join(ops[:6])}), which need the Flex delegate that this LiteRT "
            "interpreter lacks; run it where the Flex delegate is linked (tensorflow-lite-select-tf-ops)")


def run_in_order(data: bytes, samples: list[np.ndarray], inputs: list[str], outputs: list[str]) -> list[np.ndarray]:
    """A .tflite model's outputs in the order `outputs`, on samples in the order `inputs`
    (signature names; where the converter lost them, its own order)."""
    runner = TfliteRunner(data)
    if sorted(runner.input_names) == sorted(inputs):
        found = runner.run_named(dict(zip(inputs, samples)))
    else:  # the names were lost on the way: the converter's order
        found = dict(zip(runner.output_names, runner.run_all(samples)))
    if sorted(found) == sorted(outputs):
        return [found[name] for name in outputs]
    return list(found.values())


def _failed(error: str) -> str:
    first = " ".join(error.split()).split(". ")[0][:160].rstrip(".")
    return f"the float32 .tflite failed ({first}; see its entry)"


class Conversion:
    """Makes the precisions of `job`, float32 first.

    Args:
        job: what to make.
        say: reports a progress line.
        step: reports the step a precision has reached (`converting`, `validating`).
    """

    def __init__(self, job: Job, say: Callable[[str], None], step: Callable[[str, str], None]):
        self.job = job
        self.say = say
        self.step = step
        self.calibration = job.read_samples("calibration")
        self.eval_x = job.read_samples("eval")
        self.check_x = job.read_samples("check")
        self.float_bytes: bytes | None = None
        self.float_check: list[np.ndarray] | None = None
        self.float_problem: str | None = None  # why float32 cannot serve as the base or the check

    def adopt(self, precision: str, result: dict) -> None:
        """Takes over float32 from an earlier child (its bytes and check outputs)."""
        if precision != Precision.FLOAT32:
            return
        if result.get("status") != "ok":
            self.float_problem = _failed(result.get("error") or "")
            return
        self.float_bytes = self.job.model_path(precision).read_bytes()
        if (result.get("settings") or {}).get("sparse_inference", {}).get("used"):
            # The file on disk is the sparse encoding: the other precisions start from dense weights.
            self.float_bytes = self._converter(Precision.FLOAT32)[0]
        self.float_check = self.job.read_outputs(precision, "check")
        if self.float_check is None and self.check_x is not None:
            self.float_problem = result.get("not_validated") or "the float32 .tflite did not run on the check samples"

    def failed(self, precision: str, error: str) -> None:
        if precision == Precision.FLOAT32:
            self.float_problem = _failed(error)

    def run(self, data: bytes, samples: list[np.ndarray]) -> list[np.ndarray]:
        """The model's outputs, in the job's output order, on samples in its input order."""
        return run_in_order(data, samples, self.job.inputs, self.job.outputs)

    def make(self, name: str) -> tuple[dict, bytes, dict]:
        """(result, .tflite bytes, outputs by kind) of one precision.

        Raises:
            EdgeoptError: the precision cannot be made or run.
        """
        precision = Precision(name)
        if precision is Precision.FLOAT32:
            self.say("converting float32 (TFLite converter)")
            data, settings = self._converter(precision)
            self.float_bytes = data  # the dense file stays the base of the other precisions
            data, settings["sparse_inference"] = choose_float32(
                data, lambda: self._converter(precision, sparsity=True)[0], self._timing_sample())
            if settings["sparse_inference"]["used"]:
                self.say(f"float32: sparse weights, {settings['sparse_inference']['reason']}")
        elif precision is Precision.AUTO:
            data, settings = self._auto()
        elif precision in engines.QUANTIZER_PRECISIONS:
            data, settings = self._quantized(precision)
        else:
            data, settings = self._calibrated(precision)
        result = {"precision": name, "status": "ok", "settings": settings, "not_validated": not_runnable(data)}
        outputs: dict[str, list[np.ndarray]] = {}
        if precision is Precision.FLOAT32 and self.check_x is not None:
            if result["not_validated"]:
                self.float_problem = f"the float32 .tflite cannot run here: {result['not_validated']}"
            else:
                self.float_check = outputs["check"] = self.run(data, self.check_x)
        if name in self.job.precisions and self.eval_x is not None and not result["not_validated"]:
            self.step(name, "validating")
            self.say(f"validating {name} in LiteRT on {len(self.eval_x[0])} samples")
            outputs["eval"] = self.run(data, self.eval_x)
        return result, data, outputs

    def _timing_sample(self) -> list[np.ndarray] | None:
        """One input sample (per model input) to time float32 encodings on."""
        for samples in (self.check_x, self.calibration, self.eval_x):
            if samples is not None and len(samples[0]):
                return [np.asarray(x[:1]) for x in samples]
        return None

    def _converter(self, precision: Precision, **kwargs) -> tuple[bytes, dict]:
        return engines.convert_saved_model(self.job.saved_model, precision, input_names=self.job.inputs,
                                           batch_size=self.job.batch_size, select_tf_ops=self.job.select_tf_ops,
                                           **kwargs)

    def _calibrated(self, precision: Precision) -> tuple[bytes, dict]:
        io_dtype = IODtype(self.job.io_dtype)
        if self.job.quantization_aware and precision is Precision.INT8:
            # The learned fake-quant ranges set the scales; calibration would override them.
            self.say("converting int8 from the quantization-aware model's learned ranges (TFLite converter)")
            return self._converter(precision, io_dtype=io_dtype, learned_ranges=True)
        samples = self.calibration
        what = f" (calibrating on {len(samples[0])} samples)" if samples is not None else ""
        self.say(f"converting {precision}{what} (TFLite converter)")
        return self._converter(precision, calibration=samples, io_dtype=io_dtype)

    def _auto(self) -> tuple[bytes, dict]:
        """The smallest per-op mix within the budget (`edgeopt.convert.auto_precision`)."""
        from edgeopt.convert import mixed
        from edgeopt.convert.auto_precision import choose
        from edgeopt.convert.sensitivity import Evaluator

        if self.float_bytes is None:
            raise ConversionError(f"auto is chosen from the float32 .tflite. Received: {self.float_problem}. "
                                  "Make float32 convert first.")
        reference, labels = self.job.read_samples("reference"), self.job.read_labels()
        if reference is None or labels is None or self.eval_x is None or self.job.max_accuracy_drop is None:
            raise ConversionError("auto needs labelled eval data, its reference outputs and max_accuracy_drop. "
                                  "Received: some of them missing. Pass --eval-data and --max-accuracy-drop.")
        self.say(f"choosing per-op precisions within {self.job.max_accuracy_drop} accuracy points "
                 "(ai-edge-quantizer scopes, greedy over the sensitivity ranking)")
        reason = not_runnable(self.float_bytes)
        if reason:
            raise ConversionError(f"auto measures every candidate in LiteRT, which cannot run this model. Received: "
                                  f"{reason}. Use a uniform precision.")
        quantizer = mixed.MixedQuantizer(self.float_bytes, self.calibration, self.job.batch_size, self.job.inputs)
        evaluate = Evaluator(self.run, self.eval_x, reference, labels, self.job.outputs)
        decision = choose(quantizer, evaluate, self.job.max_accuracy_drop, say=self.say)
        chosen = {c["index"]: Precision(c["precision"]) for c in decision.choices}
        uniform = {index: Precision.INT8 for index in chosen}
        try:  # uniform int8 by the same tool, for the latency comparison the exporter makes
            self.job.write_extra("auto.int8", quantizer.quantize(uniform))
        except ConversionError:
            pass
        settings = {"tool": engines.QUANTIZER, "precision": str(Precision.AUTO),
                    "search": "greedy over the sensitivity ranking, then shrink and contiguity passes",
                    **decision.settings(), "recipe": mixed.recipe(quantizer.regions, chosen)}
        return decision.data, settings

    def _quantized(self, precision: Precision) -> tuple[bytes, dict]:
        if self.float_bytes is None:
            if precision is Precision.INT4:
                return self._int4_fallback(None, None, self.float_problem)
            self.say(f"converting {precision} (TFLite converter; no float32 base)")
            data, settings = self._converter(precision)
            settings["fallback_reason"] = self.float_problem
            return data, settings
        self.say(f"quantizing {precision} (ai-edge-quantizer, from the float32 model)")
        try:
            data, settings = engines.quantize_tflite(self.float_bytes, precision)
        except ConversionError as exc:
            data, settings, problem = None, None, str(exc)
        else:
            problem = self._disagreement(data)
        if problem is None:
            return data, settings
        if precision is Precision.INT4:
            return self._int4_fallback(data, settings, problem)
        self.say(f"{precision}: ai-edge-quantizer result rejected ({problem}); using the TFLite converter")
        data, settings = self._converter(precision)
        settings["fallback_reason"] = problem
        return data, settings

    def _int4_fallback(self, data: bytes | None, settings: dict | None, problem: str | None) -> tuple[bytes, dict]:
        """int4 that ai-edge-quantizer could not make, or that disagrees with float32 on the check samples.

        The converter has no int4, so the fallback goes per op first: int4 stays on the
        ops that agree with float32 alone, the others get int8 weights (still weight-only,
        float compute) or, where those disagree too, stay float32. Where that is
        impossible (no float32 base, ai-edge-quantizer fails) the converter's dynamic
        range model (int8 weights) is the int4 file; the report's `fallback_reason` and
        `weights` say so. A per-op mix that still
        disagrees is kept with the disagreement noted, as before.
        """
        from edgeopt.convert import mixed

        if self.float_bytes is not None and self.check_x is not None and self.float_check is not None:
            try:
                quantizer = mixed.MixedQuantizer(self.float_bytes, None, self.job.batch_size, self.job.inputs)
                base = {r.index: Precision.FLOAT32 for r in quantizer.regions}
                choice: dict = {}

                def agrees(index: int, level) -> bool:  # a level ai-edge-quantizer refuses for this op does not
                    try:
                        return not self._disagreement(quantizer.quantize({**base, index: level}))
                    except ConversionError:
                        return False

                for r in quantizer.regions:  # the smallest of int4, int8 weights, float32 that agrees alone
                    choice[r.index] = next((level for level in (Precision.INT4, mixed.INT8_WEIGHTS)
                                            if agrees(r.index, level)), Precision.FLOAT32)
                raised = [r.index for r in quantizer.regions if choice[r.index] != Precision.INT4]
                if raised and len(raised) < len(quantizer.regions):
                    mixed_data = quantizer.quantize(choice)
                    left = self._disagreement(mixed_data)
                    self.say(f"int4: {problem}; ops {raised} kept at int8 weights or float32, int4 on the rest")
                    out = {"tool": engines.QUANTIZER, "precision": "int4", "fallback_reason": problem,
                           "per_op_fallback": [{"index": i, "op": quantizer.regions[i].name,
                                                "precision": str(choice[i])} for i in raised],
                           "recipe": mixed.recipe(quantizer.regions, choice)}
                    if left:
                        out["check"] = left
                    return mixed_data, out
            except ConversionError:
                pass
        if data is not None:  # every op disagrees alone, or no check: keep it; the exporter warns
            settings["check"] = problem
            return data, settings
        self.say(f"int4: {problem}; using the TFLite converter's dynamic range model (int8 weights)")
        data, settings = self._converter(Precision.DYNAMIC)
        settings.update(precision="int4", fallback_reason=problem, weights="int8 (converter dynamic range: "
                        "the converter has no int4)")
        return data, settings

    def _disagreement(self, data: bytes) -> str | None:
        """Why an ai-edge-quantizer result differs too much from the float32 .tflite, or None."""
        if self.check_x is None:
            return None
        if self.float_check is None:
            return f"not checked: {self.float_problem}"
        reason = not_runnable(data)
        if reason:
            return f"not checked: {reason}"
        labels = [Labels(kind) for kind in self.job.output_kinds] if self.job.output_kinds else None
        return disagreement(compare_outputs(self.run(data, self.check_x), self.float_check, labels))
