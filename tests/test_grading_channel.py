"""The grading channel and the copy report, in one process (the answer's side served by a thread):
only plain data crosses, what comes back is checked, and property checks still see what happened."""
import io
import math
import pickle
import socket
import struct
import threading

import pytest
import torch
from torch import nn

from lecture13 import copies, gan, vae
from lecture13.checks import gans as gan_checks
from lecture13 import grading_channel as ch
from lecture13.exercises import Case, run_checks


@pytest.fixture
def answer():
    """(the trusted side's Answer, the list of the answer's callables by handle)."""
    ours, theirs = socket.socketpair()
    objects: list = []
    thread = threading.Thread(target=ch.serve, args=(theirs, objects), daemon=True)
    thread.start()
    yield ch.Answer(ours), objects
    ours.close()
    thread.join(5)


def test_tensors_numbers_and_containers_cross_and_errors_keep_their_type(answer):
    trusted, objects = answer
    objects.append(lambda x, n=1, tag="t": {"y": x * n, "parts": [n, tag, None], "shape": x.shape})
    objects.append(lambda: (_ for _ in ()).throw(NotImplementedError("later")))
    f, stub = trusted.proxy(0, "f"), trusted.proxy(1, "stub")
    out = f(torch.ones(2), n=3, tag="a")
    assert torch.equal(out["y"], torch.full((2,), 3.0)) and out["parts"] == [3, "a", None] and out["shape"] == (2,)
    with pytest.raises(NotImplementedError, match="later"):
        stub()


def test_a_gan_iteration_is_checked_through_the_channel(answer):
    trusted, objects = answer
    objects.append(gan.gan_iteration)
    assert run_checks(trusted.proxy(0, "gan_iteration"), gan.gan_iteration, properties=gan_checks.iteration_checks(k=2)) == (7, [])

    def moves_d_in_gs_step(G, D, opt_d, opt_g, real, k=1):
        out = gan.gan_iteration(G, D, opt_d, opt_g, real, k)
        with torch.no_grad():
            for p in D.parameters():
                p += 0.5
        return out

    objects.append(moves_d_in_gs_step)
    _, failures = run_checks(trusted.proxy(1, "moves"), gan.gan_iteration, properties=gan_checks.iteration_checks(k=2))
    assert any("D's parameters changed after its k=2 steps" in f for f in failures)


def test_gradients_flow_back_through_the_answers_result(answer):
    trusted, objects = answer
    objects.append(vae.reparameterize)
    mu, logvar = torch.tensor([[0.5, -1.0]], requires_grad=True), torch.tensor([[0.0, math.log(4.0)]], requires_grad=True)
    z = trusted.proxy(0, "reparameterize")(mu, logvar, torch.tensor([[1.0, 1.0]]))
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(1, 2)) and torch.allclose(logvar.grad, torch.tensor([[0.5, 1.0]]))


def test_a_function_of_the_package_or_torch_is_passed_by_name_and_a_test_cells_lambda_is_refused(answer):
    trusted, objects = answer
    objects.append(lambda loss, logits: loss(logits))
    apply = trusted.proxy(0, "apply")
    logits = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(apply(gan.generator_loss_nonsaturating, logits), gan.generator_loss_nonsaturating(logits))
    assert torch.allclose(apply(gan.generator_loss_saturating, logits), gan.generator_loss_saturating(logits))
    assert torch.allclose(apply(torch.sigmoid, logits), torch.sigmoid(logits))   # a builtin of torch's
    with pytest.raises(ch.ChannelError, match="only functions of torch, lecture13 or math, by name"):
        apply(lambda t: t * 0, logits)                                          # its code would have to cross


def test_what_the_answer_writes_into_a_tensor_argument_reaches_the_trusted_tensor(answer):
    trusted, objects = answer

    def clamp_in_place(x, canvas):
        x.clamp_(0, 1)
        canvas[:, 0] = 7.0          # a sampling loop filling the image it was given
        return None

    objects.append(clamp_in_place)
    x, canvas = torch.tensor([-1.0, 0.5, 2.0]), torch.zeros(2, 3)
    assert trusted.proxy(0, "clamp_in_place")(x, canvas) is None
    assert torch.equal(x, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(canvas, torch.tensor([[7.0, 0.0, 0.0], [7.0, 0.0, 0.0]]))

    objects.append(lambda x: x.add_(1).unsqueeze_(0))   # a change of shape is refused, not copied
    with pytest.raises(ch.ChannelError, match="shape or dtype"):
        trusted.proxy(1, "reshape")(torch.zeros(2))


def test_a_returned_module_is_rebuilt_from_torch_classes_only(answer):
    trusted, objects = answer
    objects.append(lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU()))

    class Mine(nn.Module):
        def forward(self, x):
            return x

    objects.append(lambda: Mine())
    block = trusted.proxy(0, "block")()
    assert [type(m).__name__ for m in block] == ["Linear", "ReLU"] and block(torch.ones(1, 2)).shape == (1, 3)
    with pytest.raises(ch.ChannelError, match="defined in the answer"):
        trusted.proxy(1, "mine")()
    assert run_checks(trusted.proxy(0, "block"), None, cases=[])[1] == []


def raw_message(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack("<Q", len(payload)) + payload)


class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.allclose:
            return True
        return super().__torch_function__(func, types, args, kwargs)


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_code_never_crosses(capsys):
    ours, theirs = socket.socketpair()
    raw_message(theirs, pickle.dumps({"result": Evil()}))  # a pickle that would run code
    with pytest.raises(ch.ChannelError, match="not plain data"):
        ch.receive(ours)
    buffer = io.BytesIO()
    torch.save({"result": torch.ones(2).as_subclass(Liar)}, buffer)  # a tensor subclass: its class is code
    raw_message(theirs, buffer.getvalue())
    with pytest.raises(ch.ChannelError, match="not plain data"):
        ch.receive(ours)
    assert "code ran" not in capsys.readouterr().out
    with pytest.raises(ch.ChannelError, match="nested too deeply"):
        value = []
        for _ in range(ch.MAX_DEPTH + 5):
            value = [value]
        ch.check_plain(value)


def test_copies_match_after_renaming_and_reformatting():
    a = "def f(x, alpha=1.0):\n    '''doc'''\n    # comment\n    total = x.sum(0)\n    return (total + alpha) / (len(x) + 2 * alpha)\n"
    b = "def fit(data,a=1.0):\n    s=data.sum(0)   # mine\n    return (s+a)/(len(data)+2*a)\n"
    c = "def f(x, alpha=1.0):\n    return x.mean(0)\n"
    assert copies.fingerprint(a) == copies.fingerprint(b) != copies.fingerprint(c)
    assert copies.fingerprint("def f(x):\n    raise NotImplementedError()\n") is None
    report = copies.copy_report({"ann": {"ex": copies.fingerprint(a)}, "bob": {"ex": copies.fingerprint(b)},
                                 "cy": {"ex": copies.fingerprint(c)}}, {"ex": copies.fingerprint(c)})
    assert report == {"ann": "ex: same as bob", "bob": "ex: same as ann", "cy": "ex: same as the published solution"}
