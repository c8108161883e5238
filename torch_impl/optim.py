"""Adam for the torch trainers: torch's own Adam, stepping by Keras's update rule with the same epsilon.

The two frameworks put Adam's epsilon in different places (bc1 = 1 - beta1^t, bc2 = 1 - beta2^t):
  torch:  p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
  Keras:  p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + epsilon)
They are the same step when eps = epsilon / sqrt(bc2), a value that changes with t. `Adam` sets each group's eps
so for the duration of every step and back to the configured epsilon after it, so a torch run takes exactly the
steps a Keras run with that epsilon takes, and state_dict holds the configured value; moments, bias corrections,
kernels (foreach, fused) and the state's layout stay torch's.
With `loss_scale` (float16 training) it also does what keras.optimizers.LossScaleOptimizer does: `scale_loss`
multiplies the loss by a dynamic scale before the gradients are taken, and loop.apply_gradients unscales them and
skips a step whose gradients are not finite, through a torch.amp.GradScaler; the scale is part of state_dict.
"""

from __future__ import annotations

import math

import torch


class Adam(torch.optim.Adam):
    """torch.optim.Adam with Keras's epsilon placement: `epsilon` means what it means in keras.optimizers.Adam."""

    def __init__(self, params, lr: float, betas: tuple[float, float], epsilon: float, loss_scale: bool = False,
                 **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=epsilon, **kwargs)
        self.epsilon = epsilon  # the configured value; each group's eps is derived from it at every step
        self.loss_scale = loss_scale
        self.grad_scaler: torch.amp.GradScaler | None = None  # made on the loss's device by the first scale_loss
        self._scaler_state: dict | None = None  # a loaded scale, waiting for the scaler

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to differentiate: times the dynamic loss scale with `loss_scale` (Keras: `scale_loss`)."""
        if not self.loss_scale:
            return loss
        if self.grad_scaler is None:
            self.grad_scaler = torch.amp.GradScaler(loss.device.type)
            if self._scaler_state:
                self.grad_scaler.load_state_dict(self._scaler_state)
        return self.grad_scaler.scale(loss)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.loss_scale:
            state["loss_scale"] = self.grad_scaler.state_dict() if self.grad_scaler else self._scaler_state or {}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """torch's, and the loss scale where both the state and this optimiser have one (a run resumed in another
        precision keeps its moments and starts or drops the scale). Each moment takes its parameter's memory layout:
        the fused kernel reads parameter, gradient and moments as flat arrays of one layout, and a moment read from a
        file (or converted from Keras) is contiguous where a channels-last kernel is not."""
        super().load_state_dict(state_dict)
        for parameter, state in self.state.items():
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == parameter.shape and value.stride() != parameter.stride():
                    state[key] = torch.empty_like(parameter).copy_(value)
        if self.loss_scale and state_dict.get("loss_scale"):
            self._scaler_state = state_dict["loss_scale"]
            if self.grad_scaler is not None:
                self.grad_scaler.load_state_dict(self._scaler_state)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            stepping = [parameter for parameter in group["params"] if parameter.grad is not None]
            started = [self.state[parameter]["step"] for parameter in stepping if "step" in self.state[parameter]]
            counts = set(torch.stack(started).tolist()) if started else set()  # one read, even from a GPU
            counts |= {0} if len(started) < len(stepping) else set()
            if len(counts) > 1:  # Keras counts steps per optimiser: one t for every variable
                raise ValueError(f"parameters of one Adam group are at different steps {sorted(counts)}")
            t = int(counts.pop()) + 1 if counts else 1  # the step about to be taken
            group["eps"] = self.epsilon / math.sqrt(1 - group["betas"][1] ** t)
        try:
            return super().step(closure)
        finally:
            for group in self.param_groups:
                group["eps"] = self.epsilon
