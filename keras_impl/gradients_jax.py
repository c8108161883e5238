"""Gradients on Keras's JAX backend: pure functions (mirror: keras_impl/gradients_tensorflow.py, gradients_torch.py).

The same five names as the other backends (see keras_impl/gradients_tensorflow.py). JAX differentiates functions,
not a record of operations: jax.vjp, jax.value_and_grad and jax.grad take a pure function of arrays, and a Keras
variable is state. So every gradient runs its forward pass as `Layer.stateless_call` runs a layer (`_stateless`):
inside a keras.StatelessScope that gives every variable a value, the values being differentiated passed in as
arguments, and whatever the pass assigns (BatchNorm moving statistics; the seed generators' states, which dropout
advances) handed back as outputs and written to the step's state afterwards. The optimisers update by
`stateless_apply`. `fit` is stateless as well: it jit-compiles `train_step(state, data)`, state = the values of the
trainable, non-trainable (seed-generator states among them), optimiser and metric variables, and keeps the values
the step returns. `Trainer` gives fit that step: the model's own `train_step(data)` run in a scope over `state`.
"""

from __future__ import annotations

import jax
import keras

# --------------------------------------------------------------------------------------------------- Gradients


def gradients(losses_fn, variables):
    """losses_fn() -> (losses, aux): one forward pass giving a list of scalar losses; variables[i]: the variables
    to differentiate losses[i] by. Returns (losses, aux, grads), grads[i] the gradients of losses[i]. The one
    place where a loss becomes gradients (and where a loss scale would multiply it)."""
    flat = [variable for group in variables for variable in group]
    pure, written = _stateless(losses_fn, flat)
    losses, pull, (aux, state) = jax.vjp(pure, [variable.value for variable in flat], has_aux=True)  # one pass
    _write(written, state)
    grads, start = [], 0
    for index, group in enumerate(variables):  # each loss pulled back through it (value_and_grad: one loss)
        seed = [(keras.ops.ones_like if k == index else keras.ops.zeros_like)(loss) for k, loss in enumerate(losses)]
        grads.append(pull(seed)[0][start : start + len(group)])
        start += len(group)
    return losses, aux, grads


def recorded(fn, variables):
    """outputs = fn(), recorded so that a loss of them computed later (after other updates) is differentiated back
    through this very pass into `variables`. Returns (outputs, resume): resume(loss_fn) -> (loss, aux, grads),
    with loss_fn(outputs) -> (loss, aux)."""
    pure, written = _stateless(lambda: (fn(), None), variables)
    outputs, pull, (_, state) = jax.vjp(pure, [variable.value for variable in variables], has_aux=True)
    _write(written, state)

    def resume(loss_fn):
        pure_loss, written_now = _stateless(loss_fn, [])
        (loss, (aux, state)), output_grads = jax.value_and_grad(pure_loss, argnums=1, has_aux=True)([], outputs)
        _write(written_now, state)
        (grads,) = pull(output_grads)  # the chain rule, back through the recorded pass
        return loss, aux, grads

    return outputs, resume


def input_gradient(fn, x):
    """d sum(fn(x)) / dx at x, differentiable in fn's variables: a jax.grad nested in the enclosing one."""
    pure, written = _stateless(lambda x: (keras.ops.sum(fn(x)), None), [])
    grad, (_, state) = jax.grad(pure, argnums=1, has_aux=True)([], x)
    _write(written, state)
    return grad


# ----------------------------------------------------------------------------------------------------- Updates


def apply_gradients(optimizer, grads, variables):
    """One update of `variables` by `optimizer`, as a pure function of the values: stateless_apply."""
    values, optimizer_values = optimizer.stateless_apply(
        [variable.value for variable in optimizer.variables], grads, [variable.value for variable in variables])
    _write(variables, values)
    _write(optimizer.variables, optimizer_values)


class _Scope(keras.StatelessScope):
    """A StatelessScope that starts from the enclosing scope's values (the step's state) and lists the variables
    assigned inside it."""

    def __enter__(self):
        scope = super().__enter__()
        if self.original_scope is not None:  # unmapped variables read their own (purged, during fit) value
            self.state_mapping = self.original_scope.state_mapping | self.state_mapping
        self.assigned = []
        return scope

    def add_update(self, update):
        super().add_update(update)
        if not any(update[0] is variable for variable in self.assigned):
            self.assigned.append(update[0])


def _stateless(fn, variables):
    """fn(*args) -> (out, aux) as a pure function of the values of `variables`, as `stateless_call` makes one of a
    layer: pure(values, *args) -> (out, (aux, new values)) runs fn in a _Scope with `variables` at `values`, and
    returns the values fn assigned instead of writing them; `written` lists their variables once pure has run."""
    written = []

    def pure(values, *args):
        with _Scope(list(zip(variables, values))) as scope:
            out, aux = fn(*args)
        written[:] = scope.assigned
        return out, (aux, [scope.get_current_value(variable) for variable in scope.assigned])

    return pure, written


def _write(variables, values):
    """Assign: into the enclosing scope (fit's step, an enclosing gradient), or the variables themselves."""
    for variable, value in zip(variables, values):
        variable.assign(value)


# --------------------------------------------------------------------------------------------------------- fit


class Trainer(keras.Model):
    """`fit` jit-compiles a stateless `train_step(state, data)` -> (logs, state): `stateless_train_step`, which
    runs the model's own `train_step(data)` over the state."""

    def make_train_function(self, force=False):
        self.train_step = self.stateless_train_step  # what Keras's own make_train_function compiles
        try:
            return super().make_train_function(force)
        finally:
            del self.train_step

    def stateless_train_step(self, state, data):
        """state: the values of (trainable, non-trainable, optimiser, metric variables); returns (logs, their new
        values). Reads inside the model's step see `state`; its assignments are collected from the scope."""
        groups = (self.trainable_variables, self.non_trainable_variables, self.optimizer.variables,
                  self.metrics_variables)
        mapping = [pair for group, values in zip(groups, state) for pair in zip(group, values)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = self.train_step(data)
        return logs, tuple([scope.get_current_value(variable) for variable in group] for group in groups)
