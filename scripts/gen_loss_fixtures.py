#!/usr/bin/python3
"""Reference values for tests/test_loss_grad.c from an independent
implementation: the GRU4Rec loss formulas written in PyTorch (Debian's
python3-torch), differentiated by autograd in float64.

The formulas follow the official code (hidasib/GRU4Rec_PyTorch_Official
gru4rec_pytorch.py: xe_loss_with_softmax, softmax_neg,
bpr_max_loss_with_elu, the division by batch_size in fit; hidasib/GRU4Rec
gru4rec.py: top1_max, bpr, top1), written here in the same tensor style so
that the C kernels are checked against the published expressions rather
than against their own algebra.

Run:  /usr/bin/python3 scripts/gen_loss_fixtures.py tests/fixtures
Each case writes tests/fixtures/loss_<name>.txt:
    kind bpreg elu norm B C has_logq
    O (B*C values, row-major)
    logq_col (C values, or the word none)
    loss
    dO (B*C values)
"""
import os
import sys

import torch

torch.set_default_dtype(torch.float64)

KINDS = {"xe": 0, "bprmax": 1, "top1max": 2, "bpr": 3, "top1": 4}


def softmax_neg(X):
    # softmax over the non-diagonal columns, as GRU4Rec's softmax_neg does it:
    # zero the diagonal, subtract the row max, exponentiate, mask, normalise
    hm = 1.0 - torch.eye(*X.shape)
    X = X * hm
    e_x = torch.exp(X - X.max(dim=1, keepdim=True)[0]) * hm
    return e_x / e_x.sum(dim=1, keepdim=True)


def loss_sum(kind, O, logq_col, bpreg, elu):
    B = O.shape[0]
    if kind == "xe":
        if logq_col is not None:
            O = O - logq_col
        X = torch.exp(O - O.max(dim=1, keepdim=True)[0])
        X = X / X.sum(dim=1, keepdim=True)
        return -torch.sum(torch.log(torch.diag(X) + 1e-24))
    if kind == "bprmax":
        if elu > 0:
            O = torch.nn.functional.elu(O, elu)
        s = softmax_neg(O)
        t = torch.diag(O).reshape(B, -1)
        return torch.sum(-torch.log(torch.sum(torch.sigmoid(t - O) * s, dim=1) + 1e-24)
                         + bpreg * torch.sum((O ** 2) * s, dim=1))
    if kind == "top1max":
        s = softmax_neg(O)
        t = torch.diag(O).reshape(B, -1)
        y = s * (torch.sigmoid(-t + O) + torch.sigmoid(O ** 2))
        return torch.sum(torch.sum(y, dim=1))
    if kind == "bpr":
        t = torch.diag(O).reshape(B, -1)
        return torch.sum(-torch.log(torch.sigmoid(t - O)))
    if kind == "top1":
        C = O.shape[1]
        t = torch.diag(O).reshape(B, -1)
        return torch.sum(torch.mean(torch.sigmoid(-t + O) + torch.sigmoid(O ** 2), dim=1)
                         - torch.sigmoid(t.flatten() ** 2) / C)
    raise ValueError(kind)


def fmt(values):
    return " ".join("%.17g" % float(v) for v in values)


def case(outdir, name, kind, B, S, seed, scale=2.0, bpreg=0.0, elu=0.0, norm=0, logq=False):
    g = torch.Generator().manual_seed(seed)
    C = B + S
    O = (torch.rand(B, C, generator=g) * 2 - 1) * scale
    O.requires_grad_(True)
    lq = None
    if logq:
        lq = torch.rand(C, generator=g) * 3.0  # logq * log(count) style values
    L = loss_sum(kind, O, lq, bpreg, elu) / (norm if norm else B)
    L.backward()
    path = os.path.join(outdir, "loss_%s.txt" % name)
    with open(path, "w") as f:
        f.write("%d %.17g %.17g %d %d %d %d\n" % (KINDS[kind], bpreg, elu, norm, B, C,
                                                 1 if logq else 0))
        f.write(fmt(O.detach().flatten()) + "\n")
        f.write((fmt(lq) if lq is not None else "none") + "\n")
        f.write("%.17g\n" % L.item())
        f.write(fmt(O.grad.flatten()) + "\n")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(outdir, exist_ok=True)
    case(outdir, "xe", "xe", 3, 4, 1)
    case(outdir, "xe_logq", "xe", 3, 4, 2, logq=True)
    case(outdir, "xe_norm", "xe", 3, 5, 3, norm=5)
    case(outdir, "bprmax_reg0", "bprmax", 3, 4, 4, bpreg=0.0)
    case(outdir, "bprmax_reg", "bprmax", 3, 4, 5, bpreg=1.5)
    case(outdir, "bprmax_elu", "bprmax", 4, 5, 6, bpreg=0.9, elu=0.5)
    case(outdir, "top1max", "top1max", 3, 4, 7)
    case(outdir, "bpr", "bpr", 3, 4, 8)
    case(outdir, "top1", "top1", 3, 4, 9)
    case(outdir, "xe_big", "xe", 4, 12, 10, scale=80.0)
    case(outdir, "bprmax_big", "bprmax", 4, 12, 11, scale=8.0, bpreg=0.5)


if __name__ == "__main__":
    main()
