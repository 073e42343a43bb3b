"""GAN objective and networks: shapes, conditioning, spectral-norm state, argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.gan import GAN, ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def conditional_conv_gan():
    """A conditional conv GAN with spectral norm, probed in one compiled call."""
    gan = GAN(
        ConvGenerator((8, 8, 1), channels=4, num_classes=10),
        ConvDiscriminator(num_classes=10, spectral_norm=True, channels=4),
        latent_dim=3, num_classes=10, num_levels=17, loss_kind="wasserstein",
    )  # fmt: skip
    batch = {"x": np.arange(8 * 64).reshape(8, 8, 8, 1) % 17, "label": np.arange(8) % 10}
    params, model_state = gan.init(KEY, batch)

    @jax.jit
    def probe(params, model_state, batch):
        _, (d_metrics, after_d) = gan.loss(params, model_state, batch, KEY, "discriminator")
        _, (_, after_g) = gan.loss(params, model_state, batch, KEY, "generator")
        z = jax.random.normal(KEY, (2, 3))
        by_label = [gan.generate(params, model_state, z, jnp.array([c, c])) for c in (0, 5)]
        return dict(
            d_metrics=d_metrics, after_d=after_d, after_g=after_g, by_label=by_label,
            samples=gan.sample(params, model_state, KEY, 8, jnp.arange(8)),
            evaluate=gan.evaluate(params, model_state, batch, KEY),
        )  # fmt: skip

    return gan, params, model_state, probe(params, model_state, batch)


def test_conditional_conv_gan_shapes_levels_and_spectral_state(conditional_conv_gan):
    _, params, model_state, out = conditional_conv_gan
    assert set(params) == {"generator", "discriminator"}
    assert "batch_stats" in model_state["discriminator"]  # power-iteration vectors
    samples = out["samples"]
    assert samples.shape == (8, 8, 8, 1)
    assert float(samples.min()) >= 0 and float(samples.max()) <= 16
    np.testing.assert_array_equal(samples, jnp.floor(samples))
    # Discriminator steps advance the power iteration, generator steps leave it alone.
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), model_state, out["after_d"])
    assert any(jax.tree.leaves(changed))
    jax.tree.map(np.testing.assert_array_equal, model_state, out["after_g"])
    assert float(out["d_metrics"]["penalty"]) == 0.0
    assert {k: v.shape for k, v in out["evaluate"].items()} == {
        "value": (8,),
        "real_prob": (8,),
        "fake_prob": (8,),
    }


def test_labels_change_the_conditional_sample(conditional_conv_gan):
    gan, params, model_state, out = conditional_conv_gan
    a, b = out["by_label"]
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="conditional generator needs labels"):
        gan.generate(params, model_state, jnp.zeros((2, 3)))


@pytest.mark.parametrize("penalty", ["r1", "wgan_gp"])
def test_penalties_enter_the_discriminator_loss(penalty):
    gan = GAN(
        MLPGenerator((8,), (2,)), MLPDiscriminator(hidden_dims=(8,)), latent_dim=2,
        penalty=penalty, penalty_weight=2.0,
    )  # fmt: skip
    batch = {"x": np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)}
    params, model_state = gan.init(KEY, batch)
    loss, (metrics, _) = jax.jit(gan.loss, static_argnums=4)(
        params, model_state, batch, KEY, "discriminator"
    )
    assert float(metrics["penalty"]) > 0
    assert float(loss) == pytest.approx(-float(metrics["value"]) + 2.0 * float(metrics["penalty"]))


def test_mlp_gan_schedule_and_errors():
    gan = GAN(MLPGenerator((8,), (2,)), MLPDiscriminator(hidden_dims=(8,)), latent_dim=2, d_steps=3)
    assert gan.players == ("discriminator", "generator")
    assert gan.schedule == ("discriminator",) * 3 + ("generator",)
    with pytest.raises(ValueError, match="loss must be one of"):
        GAN(gan.generator, gan.discriminator, latent_dim=2, loss_kind="hinge")
    with pytest.raises(ValueError, match="penalty must be one of"):
        GAN(gan.generator, gan.discriminator, latent_dim=2, penalty="l2")
    with pytest.raises(ValueError, match="d_steps must be"):
        GAN(gan.generator, gan.discriminator, latent_dim=2, d_steps=0)
    with pytest.raises(ValueError, match=r"divisible by 2\^num_upsamples = 2"):
        ConvGenerator((7, 7, 1))
    with pytest.raises(ValueError, match=r"divisible by 2\^num_upsamples = 4"):
        ConvGenerator((14, 14, 1), num_upsamples=2)


def test_dcgan_networks_at_28x28():
    generator = ConvGenerator((28, 28, 1), channels=2, num_upsamples=2)
    z = jnp.zeros((3, 4))
    g_vars = generator.init(KEY, z)
    assert g_vars["params"]["project"]["kernel"].shape == (4, 7 * 7 * 8)  # 7x7x(4C)
    assert generator.apply(g_vars, z).shape == (3, 28, 28, 1)
    discriminator = ConvDiscriminator(channels=2, num_downsamples=2)
    x = jnp.zeros((3, 28, 28, 1))
    d_vars = discriminator.init(KEY, x)
    assert d_vars["params"]["head"]["kernel"].shape == (7 * 7 * 8, 1)  # 7x7x(4C) features
    assert discriminator.apply(d_vars, x).shape == (3,)
