#!/usr/bin/python3
"""Reference outputs of PyTorch's recurrent cells for tests/test_cells_torch.c.

Builds nn.GRUCell, nn.LSTMCell and nn.RNNCell (tanh, relu) in float64 with
fixed weights, runs T steps with one-step truncated gradients (the previous
state is detached, as GRU4Rec trains), takes loss = sum_t sum(dh_t * h_t)
for fixed upstream gradients dh_t, and writes inputs, states and gradients
(weights, biases, inputs) as text into tests/fixtures/cell_<name>.txt.

Run with Debian's python3-torch:  /usr/bin/python3 scripts/gen_cell_fixtures.py

File format (whitespace separated, '#' starts a comment line):
  dim NAME VALUE              (B, H, I, T)
  array NAME COUNT v1 v2 ...  (row-major, PyTorch layouts)
"""
import os
import sys

import torch

B, H, I, T = 4, 6, 5, 2
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures")


def make_cell(name):
    if name == "gru":
        return torch.nn.GRUCell(I, H, bias=True, dtype=torch.float64)
    if name == "lstm":
        return torch.nn.LSTMCell(I, H, bias=True, dtype=torch.float64)
    act = "tanh" if name == "rnn_tanh" else "relu"
    return torch.nn.RNNCell(I, H, bias=True, nonlinearity=act, dtype=torch.float64)


def relu_margin(cell, xs, h0):
    """Smallest |pre-activation| of the relu cell over all steps."""
    m = float("inf")
    h = h0
    with torch.no_grad():
        for x in xs:
            a = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
            m = min(m, a.abs().min().item())
            h = torch.relu(a)
    return m


def generate(name, seed):
    g = torch.Generator().manual_seed(seed)

    def u(*shape, lo=-1.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    cell = make_cell(name)
    with torch.no_grad():
        cell.weight_ih.copy_(u(*cell.weight_ih.shape, lo=-0.7, hi=0.7))
        cell.weight_hh.copy_(u(*cell.weight_hh.shape, lo=-0.7, hi=0.7))
        cell.bias_ih.copy_(u(*cell.bias_ih.shape, lo=-0.5, hi=0.5))
        cell.bias_hh.copy_(u(*cell.bias_hh.shape, lo=-0.5, hi=0.5))
    xs = [u(B, I).requires_grad_(True) for _ in range(T)]
    h0 = u(B, H)
    c0 = u(B, H)
    dhs = [u(B, H) for _ in range(T)]
    if name == "rnn_relu" and relu_margin(cell, xs, h0) < 1e-3:
        return None  # a pre-activation at the kink: float and double may disagree

    arrays = [
        ("weight_ih", cell.weight_ih), ("bias_ih", cell.bias_ih),
        ("weight_hh", cell.weight_hh), ("bias_hh", cell.bias_hh), ("h0", h0),
    ]
    if name == "lstm":
        arrays.append(("c0", c0))
    loss = torch.zeros((), dtype=torch.float64)
    h, c = h0, c0
    outs = []
    for t in range(T):
        if name == "lstm":
            h, c = cell(xs[t], (h.detach(), c.detach()))
            outs += [("h%d" % (t + 1), h), ("c%d" % (t + 1), c)]
        else:
            h = cell(xs[t], h.detach())
            outs.append(("h%d" % (t + 1), h))
        loss = loss + (dhs[t] * h).sum()
    loss.backward()
    for t in range(T):
        arrays += [("x%d" % t, xs[t]), ("dh%d" % (t + 1), dhs[t])]
    arrays += outs
    arrays += [
        ("grad_weight_ih", cell.weight_ih.grad), ("grad_bias_ih", cell.bias_ih.grad),
        ("grad_weight_hh", cell.weight_hh.grad), ("grad_bias_hh", cell.bias_hh.grad),
    ]
    arrays += [("grad_x%d" % t, xs[t].grad) for t in range(T)]
    return arrays


def write(name, arrays, seed):
    path = os.path.join(OUT, "cell_%s.txt" % name)
    with open(path, "w") as f:
        f.write("# PyTorch %s reference (torch %s, float64, seed %d); made by\n"
                "# scripts/gen_cell_fixtures.py - regenerate, do not edit.\n"
                % (name, torch.__version__, seed))
        for k, v in (("B", B), ("H", H), ("I", I), ("T", T)):
            f.write("dim %s %d\n" % (k, v))
        for key, tensor in arrays:
            vals = tensor.detach().reshape(-1).tolist()
            f.write("array %s %d\n" % (key, len(vals)))
            for i in range(0, len(vals), 6):
                f.write(" ".join(repr(float(v)) for v in vals[i:i + 6]) + "\n")
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    for k, name in enumerate(["gru", "lstm", "rnn_tanh", "rnn_relu"]):
        seed = 1000 + 17 * k
        arrays = generate(name, seed)
        while arrays is None:
            seed += 1
            arrays = generate(name, seed)
        print("wrote", write(name, arrays, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
