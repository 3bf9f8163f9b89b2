"""GaLore's optimizer, written from its paper and its repo's galore_torch
(DESIGN §6), as the reference the engine's train/galore_method.cpp is compared
against. Independent of the engine: its own SVD (torch.linalg.svd, float64),
its own Adam.

Every attention/MLP weight's gradient G (m, n) is projected before Adam:

  at steps 0, T, 2T, ... (T = update_proj_gap):  U S Vh = svd(G)
    right (std when m >= n):  R = G Vh_r^T         back(N) = N Vh_r
    left  (std when m <  n):  R = U_r^T G          back(N) = U_r N
    full:                     R = U_r^T G Vh_r^T   back(N) = U_r N Vh_r
  (reverse_std swaps std's sides). Sign rule, stated because an SVD's vectors
  are defined up to sign: each singular vector's largest-magnitude entry is
  made positive (the engine uses the same rule).

The step (its repo's AdamW, copied from HF transformers: eps beside sqrt(v),
the bias corrections folded into the step size), for every parameter:

  k += 1;  m = b1 m + (1-b1) R;  v = b2 v + (1-b2) R^2
  p -= lr * sqrt(1 - b2^k) / (1 - b1^k) * scale * back(m / (sqrt(v) + eps))
  p -= lr * wd * p                 (decoupled weight decay, after the update)

with R = G, back = identity and scale = 1 for parameters not projected.
The moments keep their projected shape across a refresh, unchanged.
"""
import torch

PROJECTED = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
             "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def sides(proj_type, m, n):
    """(left, right): which projectors proj_type gives an m x n weight."""
    if proj_type == "full":
        return True, True
    right = proj_type == "right" or (proj_type == "std" and m >= n) or (proj_type == "reverse_std" and m < n)
    return not right, right


def signed(vectors):
    """vectors (k, len) with each row's largest-|x| entry made positive."""
    at = vectors.abs().argmax(dim=1)
    sign = torch.sign(vectors[torch.arange(vectors.shape[0]), at])
    return vectors * sign[:, None]


def projectors(G, rank, proj_type):
    """(U_r (m, r) or None, Vh_r (r, n) or None) from the SVD of G in float64."""
    left, right = sides(proj_type, *G.shape)
    U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    Ur = signed(U[:, :rank].T).T.to(G.dtype) if left else None
    Vhr = signed(Vh[:rank]).to(G.dtype) if right else None
    return Ur, Vhr


def project(G, Ur, Vhr):
    R = G if Ur is None else Ur.T @ G
    return R if Vhr is None else R @ Vhr.T


def project_back(N, Ur, Vhr):
    X = N if Vhr is None else N @ Vhr
    return X if Ur is None else Ur @ X


class RefGaloreAdamW:
    def __init__(self, params, rank, update_proj_gap, scale, proj_type, betas=(0.9, 0.999), eps=1e-6,
                 weight_decay=0.0):
        self.params = params  # dict name -> tensor (updated in place)
        self.rank, self.gap, self.scale, self.proj_type = rank, update_proj_gap, scale, proj_type
        self.b1, self.b2 = betas
        self.eps, self.wd = eps, weight_decay
        self.k = 0
        self.m, self.v, self.proj = {}, {}, {}

    @staticmethod
    def is_projected(name):
        return name.endswith(PROJECTED)

    @torch.no_grad()
    def step(self, grads, lr):
        refresh = self.k % self.gap == 0
        self.k += 1
        bc1, bc2 = 1 - self.b1 ** self.k, 1 - self.b2 ** self.k
        step_size = lr * bc2 ** 0.5 / bc1
        for n, p in self.params.items():
            g = grads[n]
            projected = self.is_projected(n)
            if projected:
                if refresh:
                    self.proj[n] = projectors(g, self.rank, self.proj_type)
                g = project(g, *self.proj[n])
            if n not in self.m:
                self.m[n], self.v[n] = torch.zeros_like(g), torch.zeros_like(g)
            self.m[n].mul_(self.b1).add_(g, alpha=1 - self.b1)
            self.v[n].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            N = self.m[n] / (self.v[n].sqrt() + self.eps)
            if projected:
                N = self.scale * project_back(N, *self.proj[n])
            p.add_(N, alpha=-step_size)
            if self.wd > 0:
                p.add_(p, alpha=-lr * self.wd)
