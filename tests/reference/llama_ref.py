"""Independent PyTorch reference of the switchlora model (DESIGN §3-§5).

One model definition, written as plain functions over a dict of named tensors
(HF LlamaForCausalLM names), shared by the reference CLI (run_reference.py),
the self-checks (selfcheck.py) and the PyTorch benchmark (bench/torch_llama.py).
Autograd is PyTorch's; everything SwitchLoRA-specific (switch operations,
per-vector AdamW, frozen vectors) is written out here by hand.

Shapes: B batch, T time, C channels, NH heads, HS = C / NH, I intermediate,
L layers, V vocabulary, r LoRA rank.
"""
import json
import math

import torch
import torch.nn.functional as F

# The linear layers of one block, as named inside model.layers.N.
LINEAR_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                  "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


class LlamaConfig:
    """HF LLaMA config.json fields (DESIGN §3)."""

    def __init__(self, d):
        try:
            self.hidden_size = int(d["hidden_size"])
            self.intermediate_size = int(d["intermediate_size"])
            self.num_attention_heads = int(d["num_attention_heads"])
            self.num_hidden_layers = int(d["num_hidden_layers"])
            self.vocab_size = int(d["vocab_size"])
        except KeyError as e:
            raise ValueError(f"config: missing field {e}") from None
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.max_sequence_length = int(d.get("max_sequence_length", 1024))
        self.initializer_range = float(d.get("initializer_range", 0.02))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"config: hidden_size {self.hidden_size} is not a multiple "
                             f"of num_attention_heads {self.num_attention_heads}")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("config: head size must be even for RoPE")

    @staticmethod
    def from_json(path, vocab_size=None):
        with open(path) as f:
            d = json.load(f)
        if vocab_size is not None:
            d["vocab_size"] = vocab_size
        return LlamaConfig(d)


def linear_modules(cfg):
    """Full names of every adaptable linear layer, in model order."""
    return [f"model.layers.{l}.{m}" for l in range(cfg.num_hidden_layers) for m in LINEAR_MODULES]


def param_shapes(cfg, lora_r=0):
    """Ordered dict name -> shape of the model's parameters; with lora_r > 0 every
    linear layer of every block gets <module>.lora_A.weight (r, in) and
    <module>.lora_B.weight (out, r) next to its frozen <module>.weight."""
    C, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    shapes = {"model.embed_tokens.weight": (V, C)}
    io = {"self_attn.q_proj": (C, C), "self_attn.k_proj": (C, C), "self_attn.v_proj": (C, C),
          "self_attn.o_proj": (C, C), "mlp.gate_proj": (I, C), "mlp.up_proj": (I, C),
          "mlp.down_proj": (C, I)}
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (C,)
        for m in LINEAR_MODULES:
            out_f, in_f = io[m]
            shapes[p + m + ".weight"] = (out_f, in_f)
            if lora_r > 0:
                shapes[p + m + ".lora_A.weight"] = (lora_r, in_f)
                shapes[p + m + ".lora_B.weight"] = (out_f, lora_r)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
    shapes["model.norm.weight"] = (C,)
    shapes["lm_head.weight"] = (V, C)
    return shapes


def init_params(cfg, seed=0, dtype=torch.float32, lora_r=0, lora_b_zero=False):
    """Weights ~ N(0, initializer_range), norms = 1 (DESIGN §3). LoRA adapters
    (for tests): A ~ U(+-1/sqrt(in)), B ~ N(0, initializer_range) (nonzero so
    that adapter gradients and switches are exercised) or B = 0."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in param_shapes(cfg, lora_r).items():
        if len(shape) == 1:
            t = torch.ones(shape, dtype=torch.float64)
        elif name.endswith("lora_A.weight"):
            t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(shape[1])
        elif name.endswith("lora_B.weight") and lora_b_zero:
            t = torch.zeros(shape, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) * cfg.initializer_range
        params[name] = t.to(dtype)
    return params


def is_trainable(name, params):
    """W of a layer that has LoRA adapters is frozen; everything else trains."""
    if name.endswith(".weight") and not name.endswith(("lora_A.weight", "lora_B.weight")):
        module = name[: -len(".weight")]
        return module + ".lora_A.weight" not in params
    return True


def lora_scale(params, module, lora_alpha):
    """s = lora_alpha / r for one adapted module."""
    return lora_alpha / params[module + ".lora_A.weight"].shape[0]


# ------------------------------------------------------------------ layers

def linear(params, module, x, lora_alpha):
    """y = x W^T (+ s * (x A^T) B^T when the module has LoRA adapters)."""
    y = x @ params[module + ".weight"].t()
    a = params.get(module + ".lora_A.weight")
    if a is not None:
        b = params[module + ".lora_B.weight"]
        y = y + lora_scale(params, module, lora_alpha) * ((x @ a.t()) @ b.t())
    return y


def rmsnorm(x, g, eps):
    """y = x / sqrt(mean(x^2) + eps) * g over the last dimension."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rope_cos_sin(T, HS, theta, dtype):
    """cos, sin: (T, HS); pair (i, i + HS/2) rotates by angle t * theta^(-2i/HS).
    Angles are computed in float64, then cast."""
    i = torch.arange(HS // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * i / HS)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x, cos, sin):
    """HF rotate_half convention. x: (B, NH, T, HS).
    out[i] = x[i] cos - x[i+HS/2] sin;  out[i+HS/2] = x[i+HS/2] cos + x[i] sin."""
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(HS) + causal mask) v.   q, k, v: (B, NH, T, HS)."""
    T, HS = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
    return att @ v


def forward(params, cfg, idx, lora_alpha=1.0):
    """logits (B, T, V) for tokens idx (B, T) int64."""
    B, T = idx.shape
    C, NH = cfg.hidden_size, cfg.num_attention_heads
    HS = C // NH
    if T > cfg.max_sequence_length:
        raise ValueError(f"T = {T} exceeds max_sequence_length {cfg.max_sequence_length}")
    x = params["model.embed_tokens.weight"][idx]                   # (B, T, C)
    cos, sin = rope_cos_sin(T, HS, cfg.rope_theta, x.dtype)
    eps = cfg.rms_norm_eps
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        n1 = rmsnorm(x, params[p + "input_layernorm.weight"], eps)
        heads = lambda t: t.view(B, T, NH, HS).transpose(1, 2)      # (B, NH, T, HS)
        q = apply_rope(heads(linear(params, p + "self_attn.q_proj", n1, lora_alpha)), cos, sin)
        k = apply_rope(heads(linear(params, p + "self_attn.k_proj", n1, lora_alpha)), cos, sin)
        v = heads(linear(params, p + "self_attn.v_proj", n1, lora_alpha))
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(params, p + "self_attn.o_proj", y, lora_alpha)
        n2 = rmsnorm(x, params[p + "post_attention_layernorm.weight"], eps)
        gate = linear(params, p + "mlp.gate_proj", n2, lora_alpha)
        up = linear(params, p + "mlp.up_proj", n2, lora_alpha)
        x = x + linear(params, p + "mlp.down_proj", F.silu(gate) * up, lora_alpha)
    x = rmsnorm(x, params["model.norm.weight"], eps)
    return x @ params["lm_head.weight"].t()


def loss_fn(logits, targets):
    """Mean cross-entropy over all B*T positions."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# ------------------------------------------------------------------ SwitchLoRA switches

@torch.no_grad()
def switch_A_row(params, module, i, c, lora_alpha=1.0):
    """Switch row i of A to candidate c (length in); W + s*B*A is unchanged:
        W += s * B[:, i] (A[i, :] - c)^T ;  A[i, :] = c.
    Returns the old row (which the engine writes back to its candidate slot)."""
    W, A, Bm = (params[module + s] for s in (".weight", ".lora_A.weight", ".lora_B.weight"))
    s = lora_scale(params, module, lora_alpha)
    c = torch.as_tensor(c, dtype=A.dtype)
    old = A[i, :].clone()
    W += s * torch.outer(Bm[:, i], old - c)
    A[i, :] = c
    return old


@torch.no_grad()
def switch_B_col(params, module, j, c, lora_alpha=1.0):
    """Switch column j of B to candidate c (length out):
        W += s * (B[:, j] - c) A[j, :]^T ;  B[:, j] = c.   Returns the old column."""
    W, A, Bm = (params[module + s] for s in (".weight", ".lora_A.weight", ".lora_B.weight"))
    s = lora_scale(params, module, lora_alpha)
    c = torch.as_tensor(c, dtype=Bm.dtype)
    old = Bm[:, j].clone()
    W += s * torch.outer(old - c, A[j, :])
    Bm[:, j] = c
    return old


@torch.no_grad()
def relora_merge(params, module, new_A, lora_alpha=1.0):
    """ReLoRA's merge and restart (DESIGN §6): W += s * B A;  A = new_A;  B = 0.
    The output is unchanged, since the new adapter product is zero."""
    W, A, Bm = (params[module + s] for s in (".weight", ".lora_A.weight", ".lora_B.weight"))
    s = lora_scale(params, module, lora_alpha)
    W += s * (Bm @ A)
    A.copy_(torch.as_tensor(new_A, dtype=A.dtype).reshape(A.shape))
    Bm.zero_()


# ------------------------------------------------------------------ optimizer

@torch.no_grad()
def clip_grad_norm(grads, max_norm):
    """Global L2 norm over all grads (float64); if norm > max_norm > 0, scale every
    grad by max_norm / norm (no epsilon, as optim/adamw.h). Returns the pre-clip norm."""
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    if max_norm > 0 and norm > max_norm:
        for g in grads:
            g.mul_(max_norm / norm)
    return norm


class RefAdamW:
    """AdamW (PyTorch's update order) with the SwitchLoRA step counters (DESIGN §5):
    one counter per tensor, except one per ROW of a lora_A and one per COLUMN of
    a lora_B. A vector whose freeze countdown is > 0 (its gradient zeroed by the
    caller) is, by default, updated like any other (the SwitchLoRA authors'
    StepAdamW): its counter counts the frozen steps and its moments decay. With
    skip_frozen=True it is skipped entirely instead: no moment update, no
    counter increment, no weight decay, no change (--thaw_restarts_bias_correction).

      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  k = counter after increment
      p = p (1 - lr wd);    p -= (lr / (1 - b1^k)) * m / (sqrt(v) / sqrt(1 - b2^k) + eps)

    Freezing: freeze(name, index, n) makes the vector skip the next n calls of
    step(); each step() decrements every positive countdown after updating."""

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, skip_frozen=False):
        self.params = params                  # dict name -> tensor (updated in place)
        self.skip_frozen = skip_frozen
        self.b1, self.b2 = betas
        self.eps, self.wd = eps, weight_decay
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.counter, self.frozen = {}, {}
        for n, p in params.items():
            shape = self._counter_shape(n, p)
            self.counter[n] = torch.zeros(shape, dtype=torch.int64)
            self.frozen[n] = torch.zeros(shape, dtype=torch.int64)

    @staticmethod
    def _counter_shape(name, p):
        if name.endswith("lora_A.weight"):
            return (p.shape[0], 1)            # one per row
        if name.endswith("lora_B.weight"):
            return (1, p.shape[1])            # one per column
        return (1,) * max(p.dim(), 1)         # one per tensor

    def _vector(self, name, index):
        if name.endswith("lora_A.weight"):
            return (index, slice(None))
        if name.endswith("lora_B.weight"):
            return (slice(None), index)
        if index not in (0, None):
            raise ValueError(f"{name}: a per-tensor counter has only vector 0")
        return (Ellipsis,)

    @torch.no_grad()
    def reset(self, name, index, moments=True, counter=True):
        """Zero m, v and/or the step counter of vector index of name."""
        sl = self._vector(name, index)
        if moments:
            self.m[name][sl] = 0
            self.v[name][sl] = 0
        if counter:
            self.counter[name][sl] = 0

    def freeze(self, name, index, steps):
        self.frozen[name][self._vector(name, index)] = steps

    def frozen_mask(self, name):
        """Boolean mask of the parameter's elements that are frozen now."""
        p = self.params[name]
        return (self.frozen[name] > 0).expand(p.shape) if p.dim() else self.frozen[name].view(()) > 0

    @torch.no_grad()
    def step(self, grads, lr):
        for n, p in self.params.items():
            g = grads[n]
            active_vec = (self.frozen[n] == 0) | (not self.skip_frozen)
            active = active_vec.expand(p.shape) if p.dim() else active_vec.view(())
            self.counter[n] += active_vec.long()
            k = self.counter[n].clamp(min=1).to(torch.float64)
            m_new = self.b1 * self.m[n] + (1 - self.b1) * g
            v_new = self.b2 * self.v[n] + (1 - self.b2) * g * g
            self.m[n] = torch.where(active, m_new, self.m[n])
            self.v[n] = torch.where(active, v_new, self.v[n])
            bc1 = (1 - self.b1 ** k).to(p.dtype)
            bc2_sqrt = (1 - self.b2 ** k).sqrt().to(p.dtype)
            upd = p * (1 - lr * self.wd)
            upd = upd - (lr / bc1) * self.m[n] / (self.v[n].sqrt() / bc2_sqrt + self.eps)
            p.copy_(torch.where(active, upd, p))
            self.frozen[n] = (self.frozen[n] - 1).clamp(min=0)
