"""A compiled Adam loop for the small learning tests of tests/cnf (one `lax.scan`)."""

import jax
import optax


def adam_steps(loss, params, x, *, steps: int, batch_size: int, learning_rate: float, seed=1):
    """``steps`` Adam steps on ``loss(params, batch, key)`` with random batches {'x': rows of x}
    (without replacement within a batch); returns the final parameters."""
    tx = optax.adam(learning_rate)

    @jax.jit
    def train(params):
        def step(carry, key):
            p, opt = carry
            batch = {"x": x[jax.random.choice(key, len(x), (batch_size,), replace=False)]}
            grads = jax.grad(lambda q: loss(q, batch, key))(p)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None

        keys = jax.random.split(jax.random.key(seed), steps)
        return jax.lax.scan(step, (params, tx.init(params)), keys)[0][0]

    return train(params)
