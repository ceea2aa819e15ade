"""Independent NumPy forward pass of the Llama architecture, reading a GGUF file with the
`gguf` Python package (its own parser and dequantisation), for checking Spillway's CPU backend.

    python3 llama_reference.py MODEL.gguf TOKEN_ID [TOKEN_ID ...] > logits.txt

Prints the logits of the last token, one per line (float64 math throughout). Written from the
architecture's definition (RMSNorm, RoPE on adjacent pairs as GGUF stores Q/K — NeoX halves for
qwen2 —, GQA attention with a causal mask, SwiGLU), not from Spillway's code."""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0].name == "STRING" else v[0].item()


def load(path):
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    t = {}
    for ten in r.tensors:
        a = dequantize(ten.data, ten.tensor_type).astype(np.float64)
        t[ten.name] = a.reshape([int(d) for d in reversed(ten.shape)]) if a.ndim == 1 and len(ten.shape) > 1 else a
    cfg = dict(arch=arch, layers=field(r, f"{arch}.block_count"), heads=field(r, f"{arch}.attention.head_count"),
               kv_heads=field(r, f"{arch}.attention.head_count_kv", field(r, f"{arch}.attention.head_count")),
               eps=field(r, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
               theta=field(r, f"{arch}.rope.freq_base", 10000.0))
    return cfg, t


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, pos, theta, neox):  # x: [T, heads, hd]
    hd = x.shape[-1]
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = pos[:, None] * inv[None, :]  # [T, hd/2]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    y = x.copy()
    if neox:
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        y[..., : hd // 2], y[..., hd // 2:] = a * c - b * s, a * s + b * c
    else:
        a, b = x[..., 0::2], x[..., 1::2]
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
    return y


def layers(cfg, t, ids):
    """Yields the residual stream [T, hidden] after each of the model's layers, in order."""
    T = len(ids)
    x = t["token_embd.weight"][ids]
    H = x.shape[1]
    nh, nkv = cfg["heads"], cfg["kv_heads"]
    hd = H // nh
    pos = np.arange(T, dtype=np.float64)
    neox = cfg["arch"] == "qwen2"
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["layers"]):
        p = f"blk.{l}."
        h = rms(x, t[p + "attn_norm.weight"], cfg["eps"])
        def lin(name, inp):
            y = inp @ t[p + name + ".weight"].T
            return y + t[p + name + ".bias"] if p + name + ".bias" in t else y
        q = rope(lin("attn_q", h).reshape(T, nh, hd), pos, cfg["theta"], neox)
        k = rope(lin("attn_k", h).reshape(T, nkv, hd), pos, cfg["theta"], neox)
        v = lin("attn_v", h).reshape(T, nkv, hd)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, nh * hd)
        x = x + o @ t[p + "attn_output.weight"].T
        h = rms(x, t[p + "ffn_norm.weight"], cfg["eps"])
        g, u = h @ t[p + "ffn_gate.weight"].T, h @ t[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ t[p + "ffn_down.weight"].T
        yield x


def head(cfg, t, x):
    """Logits of residual-stream rows x: the final RMSNorm, then the output (or tied) embedding."""
    h = rms(x, t["output_norm.weight"], cfg["eps"])
    return h @ t.get("output.weight", t["token_embd.weight"]).T


def forward(cfg, t, ids):
    for x in layers(cfg, t, ids):
        pass
    return head(cfg, t, x[-1])


if __name__ == "__main__":
    cfg, tensors = load(sys.argv[1])
    logits = forward(cfg, tensors, [int(a) for a in sys.argv[2:]])
    np.savetxt(sys.stdout, logits, fmt="%.6f")
