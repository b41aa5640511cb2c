#!/usr/bin/env python3
"""dist_model.py - bytes per step and expected scaling of rnnrec's MPI
data-parallel training (src/dist/), from the formulas of
docs/distributed.md.

    python3 bench/dist_model.py                    # the docs' table
    python3 bench/dist_model.py --check B S H D U O P   # one step's bytes
    python3 bench/dist_model.py --check B S H D U O P --owners UC
                                                   # the same, owner exchange

The model of one step on P machines (global batch B, b = B / P rows each,
S shared samples, H = H_last, D dense floats, U Wy rows touched per rank,
Uc rows after the merge):
  compute  F(b) = 6 b H (b + S) + 30 H^2 b  flops at R flop/s per machine
           (score GEMM forward and both backward GEMMs; the GRU layer)
  rows     every rank updates all Uc combined rows (parameter, Adagrad
           moment, gradient: ~20 bytes per float) and adds the P blocks
           it received (8 bytes per float), at BW bytes/s of memory
  network  what each rank receives (ring algorithms: what it sends is the
           same), at L bytes/s, plus a latency per collective
Nothing here is measured on a cluster: R, BW and the latency are
assumptions stated in the table's header; the bytes are the formulas that
the P = 2 and P = 4 runs confirmed (docs/distributed.md).
"""
import argparse


def rows_bytes(U, O, H, E=0, wE=0):
    """one rank's block: U Wy rows (index + H floats), O By floats, E input rows"""
    return 4 * (U * (H + 1) + O + E * (wE + 1))


def step_bytes_recv(P, B, S, H, D, U, O):
    """payload a rank receives per step (bytes), as implemented"""
    if P == 1:
        return 0
    if P == 2:
        # one allgather of fixed-size blocks: header, largest block, dense
        b = -(-B // P)
        return 40 + 4 * ((2 * b + S) * (H + 2) + D)
    return 40 * P + (P - 1) * rows_bytes(U, O, H) + 2 * (P - 1) / P * 4 * D


def owners_bytes_recv(P, S, H, D, U, O, Uc, Ob=None):
    """payload a rank receives per step with --dist-exchange owners, as
    implemented: headers (40 P), record counts and list sizes (2 x 12 P),
    the records of its rows from the other ranks (1/P of each other rank's
    U rows: position, index, H floats, + By for the O output rows), the
    other owners' combined lists ((P-1)/P of the Uc combined rows: key,
    index, H floats, + By for the Ob output rows), the dense allreduce.
    Rows spread evenly over the owners (row mod P)."""
    if P == 1:
        return 0
    Ob = Uc if Ob is None else Ob
    f = (P - 1) / P
    records = f * 4 * (U * (H + 2) + O)
    lists = f * 4 * (Uc * (H + 2) + Ob)
    return 64 * P + records + lists + 2 * f * 4 * D


def model(P, B, S, H, D, R, BW, link, lat, owner=False):
    """seconds per step; owner="combine": --dist-exchange owners as
    implemented (gradients combined at the owners, combined lists
    allgathered, every rank updates every row); owner=True: the sharded
    update (not implemented): owners also update their share and allgather
    the updated rows"""
    b = B / P
    U = S + 2 * b                   # rows one rank touches (10M items: samples distinct)
    Uc = S + 2 * B                  # after the merge (every rank's targets and inputs)
    t_gemm = (6 * b * H * (b + S) + 30 * H * H * b) / R
    if owner == "combine" and P > 1:
        t_rows = (20 * Uc * H + 8 * U * H) / BW
        net = owners_bytes_recv(P, S, H, D, U, U, Uc)
        t_net = net / link + 6 * lat * (P - 1) ** 0.5
        return t_gemm + t_rows + t_net, net
    owner = owner and P > 1
    if owner:
        t_rows = (20 * Uc * H / P + 8 * U * H) / BW
        net = 2 * (P - 1) / P * (rows_bytes(Uc, Uc, H) + 4 * D) if P > 1 else 0
        n_coll = 3
    else:
        t_rows = (20 * Uc * H + (8 * P * U * H if P > 1 else 0)) / BW
        net = step_bytes_recv(P, B, S, H, D, U, U)
        n_coll = 1 if P == 2 else 3
    t_net = net / link + (n_coll * lat * max(P - 1, 0) ** 0.5 if P > 1 else 0)
    return t_gemm + t_rows + t_net, net


def table():
    B, S, H = 512, 2048, 256
    D = 6 * H * H + 6 * H            # one GRU layer, constrained embedding (input width H)
    R, BW = 500e9, 20e9
    print(f"10M items, H {H}, global batch {B}, S {S}, D {D} floats; assumed R = {R / 1e9:.0f} GFLOP/s, "
          f"memory {BW / 1e9:.0f} GB/s per machine, latency 20 us (10G) / 5 us (100G) per collective")
    print(f"{'P':>3} {'MB/step':>8} {'10G ms':>7} {'x':>5} {'100G ms':>8} {'x':>5}   "
          f"{'owners MB':>9} {'10G x':>6} {'100G x':>7}   {'sharded MB':>10} {'10G x':>6} {'100G x':>7}")
    t1, _ = model(1, B, S, H, D, R, BW, 1.25e9, 20e-6)
    for P in (1, 2, 4, 8, 16, 32, 64):
        a10, net = model(P, B, S, H, D, R, BW, 1.25e9, 20e-6)
        a100, _ = model(P, B, S, H, D, R, BW, 12.5e9, 5e-6)
        c10, cnet = model(P, B, S, H, D, R, BW, 1.25e9, 20e-6, owner="combine")
        c100, _ = model(P, B, S, H, D, R, BW, 12.5e9, 5e-6, owner="combine")
        o10, onet = model(P, B, S, H, D, R, BW, 1.25e9, 20e-6, owner=True)
        o100, _ = model(P, B, S, H, D, R, BW, 12.5e9, 5e-6, owner=True)
        print(f"{P:>3} {net / 1e6:>8.2f} {a10 * 1e3:>7.2f} {t1 / a10:>5.2f} {a100 * 1e3:>8.2f} {t1 / a100:>5.2f}   "
              f"{cnet / 1e6:>9.2f} {t1 / c10:>6.2f} {t1 / c100:>7.2f}   "
              f"{onet / 1e6:>10.2f} {t1 / o10:>6.2f} {t1 / o100:>7.2f}")
    print(f"one machine: {t1 * 1e3:.2f} ms per step")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", nargs=7, type=float, metavar=("B", "S", "H", "D", "U", "O", "P"),
                    help="bytes one rank receives per step for measured U, O")
    ap.add_argument("--owners", type=float, metavar="UC",
                    help="with --check: the owner exchange, UC combined rows")
    a = ap.parse_args()
    if a.check and a.owners is not None:
        B, S, H, D, U, O, P = a.check
        print(f"{owners_bytes_recv(int(P), int(S), int(H), int(D), U, O, a.owners):.0f}")
    elif a.check:
        B, S, H, D, U, O, P = a.check
        print(f"{step_bytes_recv(int(P), int(B), int(S), int(H), int(D), U, O):.0f}")
    else:
        table()


if __name__ == "__main__":
    main()
