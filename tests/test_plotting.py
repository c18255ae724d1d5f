"""The image helpers scale by the value range the data has, so a student sees the real images."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from lecture13 import plotting


def test_uint8_images_are_scaled_from_0_to_255_not_clamped():
    # A uint8 image of mid-grey (128) must be drawn mid-grey, not white: the bug was to assume [0, 1].
    images = torch.tensor([0, 64, 128, 255], dtype=torch.uint8).reshape(1, 1, 1, 4)
    grid = plotting.image_grid(images, nrow=1, padding=0)
    assert grid.shape == (1, 4)
    assert torch.allclose(grid[0], torch.tensor([0, 64, 128, 255]) / 255.0)


def test_the_grid_puts_image_i_at_row_i_div_nrow_and_column_i_mod_nrow_on_white_padding():
    images = torch.arange(1, 8, dtype=torch.float32).reshape(7, 1, 1, 1).expand(7, 1, 2, 3) / 10
    grid = plotting.image_grid(images, nrow=3, padding=1)
    assert grid.shape == (1 + 3 * (2 + 1), 1 + 3 * (3 + 1))  # ceil(7 / 3) = 3 rows of 3 columns
    for i in range(7):
        top, left = 1 + (i // 3) * 3, 1 + (i % 3) * 4
        assert torch.all(grid[top:top + 2, left:left + 3] == (i + 1) / 10), i
    assert grid[0].eq(1).all() and grid[:, 0].eq(1).all()     # the padding is white
    assert grid[7:9, 5:8].eq(1).all() and grid[7:9, 9:12].eq(1).all()  # the 2 empty tiles are white too


def test_float_ranges_come_from_the_values():
    unit = torch.tensor([[[[0.0, 0.25, 1.0]]]])
    assert torch.allclose(plotting.image_grid(unit, padding=0)[0], unit[0, 0, 0])
    signed = torch.tensor([[[[-1.0, 0.0, 1.0]]]])              # a tanh generator's output
    assert torch.allclose(plotting.image_grid(signed, padding=0)[0], torch.tensor([0.0, 0.5, 1.0]))
    assert plotting.value_range_of(torch.zeros(2, 1, 3, 3, dtype=torch.uint8)) == (0.0, 255.0)


def test_float_images_out_of_range_get_a_clear_error():
    with pytest.raises(ValueError, match=r"\[0, 1\] or \[-1, 1\].*x / 255"):
        plotting.image_grid(torch.full((1, 1, 2, 2), 200.0))
    with pytest.raises(TypeError, match="uint8"):
        plotting.image_grid(torch.ones(1, 1, 2, 2, dtype=torch.int64))


def test_row_labels_name_each_row_of_the_grid():
    images = torch.rand(6, 1, 28, 28)
    ax = plotting.show_images(images, nrow=3, row_labels=["first", "second"])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["first", "second"]
    centres = list(ax.get_yticks())
    assert centres == [16.0, 46.0]                         # 2 px padding + 14 px: the middle of each tile row


def test_the_latent_grid_is_drawn_with_each_tile_centred_on_its_code():
    import matplotlib.pyplot as plt
    n, span = 5, 2.0
    images = plotting.latent_grid(lambda z: z[:, :1, None, None].expand(-1, 1, 28, 28).sigmoid(), n=n, span=span,
                                  use_inverse_cdf=False)
    ax = plotting.show_latent_grid(images, n=n, span=span)
    left, right, bottom, top = ax.get_images()[0].get_extent()
    width = 30 * n + 2                                            # n tiles of 28 pixels, 2 pixels of padding around each
    centre = lambda i: left + (2 + 30 * i + 14) * (right - left) / width    # tile i's centre, in z
    assert [round(centre(i), 6) for i in range(n)] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert (bottom, top) == (left, right) and ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"
    plt.close("all")
