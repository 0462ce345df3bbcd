"""The completion-only LM head: same log-probabilities and gradients as TRL's all-positions path on the CPU."""
import torch
import trl.trainer.utils as trl_utils
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from udasa.training.fused_head import completion_only_lm_head


def _logps_and_grad(model, ids, labels):
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
    out.log_probs.sum().backward()
    # and whatever per-token statistics the head returns besides (DPO logs the entropy when it has one)
    stats = torch.stack([x.detach() for x in (out.log_probs, out.entropy, out.mean_logits) if x is not None])
    return stats, model.get_output_embeddings().weight.grad.clone()


def test_completion_only_head_matches_the_all_positions_head(tiny_model_path, monkeypatch):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits"))  # what DPO logs too
    ids = torch.randint(3, model.config.vocab_size, (4, 40))
    labels = ids.clone()
    labels[:, :30] = -100  # a long prompt, a short completion: the case the compact path is for
    labels[1, 36:] = -100  # a shorter completion (padding)
    full, full_grad = _logps_and_grad(model, ids, labels)
    calls = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, *rest):
        calls.append(hidden.shape[0])
        return apply(hidden, *rest)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", spy)
    with completion_only_lm_head():
        compact, compact_grad = _logps_and_grad(model, ids, labels)
    assert calls == [int((labels[:, 1:] != -100).sum())]  # only the labelled positions reached the head
    torch.testing.assert_close(full, compact, rtol=1e-6, atol=1e-7)  # the same rows through the same tiles
    assert (compact[:, :, :29] == 0).all() and (compact[:, 1, 35:] == 0).all()
    # the head's weight gradient sums over fewer (all-zero) rows: equal up to float summation order
    assert ((full_grad - compact_grad).norm() / full_grad.norm()).item() < 1e-6
    assert not trl_utils._use_triton(torch.device("cpu"))  # restored after the block


def test_disabled_or_unknown_layout_leaves_trl_as_it_is():
    original = trl_utils._use_triton
    with completion_only_lm_head(enabled=False):
        assert trl_utils._use_triton is original
    with completion_only_lm_head():
        assert trl_utils._use_triton(torch.device("cpu"))
    assert trl_utils._use_triton is original
