"""A pynng program, run unchanged by tests/compat_examples/test_compat_examples.py.

It is written against pynng 0.9's API only (``import pynng``) and prints
nothing that depends on ports, ids, timing or library defaults, so its
output is the same under the real pynng and under purenng.compat.pynng
(made to answer to ``import pynng`` by a shim on ``sys.path``).

Usage: python pynng_program.py WORKDIR [SECTION ...]
"""

import asyncio
import socket
import sys
import threading
import time

import pynng
from pynng.exceptions import NNGException

WAIT = 10.0


def wait_for(cond, what):
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.005)


def tcp_listen(sock):
    """Listen on a free port; return the dialable URL (port from the address)."""
    listener = sock.listen("tcp://127.0.0.1:0")
    return f"tcp://127.0.0.1:{socket.ntohs(listener.local_address.port)}"


def pair0(workdir):
    with pynng.Pair0(recv_timeout=2000, send_timeout=2000) as s0:
        addr = tcp_listen(s0)
        with pynng.Pair0(dial=addr, recv_timeout=2000) as s1:
            s1.send(b"ping")
            print("pair0 recv:", s0.recv())
            s0.send(b"pong")
            msg = s1.recv_msg()
            print("pair0 recv_msg:", msg.bytes, msg.pipe is s1.pipes[0])
            print("pipe remote:", str(msg.pipe.remote_address) == addr[len("tcp://") :])
            print("address family:", msg.pipe.remote_address.family_as_str)
            print("pipe dialer is dialer:", msg.pipe.dialer is s1.dialers[0])
            print("counts:", len(s0.listeners), len(s0.dialers), len(s1.dialers))
            s0.recv_timeout = 50
            print("recv_timeout:", s0.recv_timeout, "send_timeout:", s0.send_timeout)
            try:
                s0.recv()
            except pynng.Timeout as e:
                print("recv timed out:", type(e).__name__, e.errno)
            try:
                s0.recv(block=False)
            except pynng.TryAgain as e:
                print("nothing waiting:", type(e).__name__, e.errno)
            try:
                s0.send("text")
            except ValueError:
                print("str refused")
            m = pynng.Message(b"once")
            s1.send_msg(m)
            try:
                s1.send_msg(m)
            except pynng.MessageStateError:
                print("message sent twice refused")
            print("after send_msg:", s0.recv())
        s1_closed = s1
        try:
            s1_closed.send(b"x")
        except pynng.Closed as e:
            print("closed:", type(e).__name__, e.errno, isinstance(e, NNGException))


def ipc(workdir):
    addr = f"ipc://{workdir}/prog.ipc"
    with pynng.Push0(listen=addr) as push, pynng.Pull0(dial=addr, recv_timeout=2000) as pull:
        push.send(b"over ipc")
        print("ipc recv:", pull.recv())
        print("ipc address:", str(pull.pipes[0].remote_address) == addr[len("ipc://") :])
        print("ipc family:", pull.pipes[0].remote_address.family_as_str)


def pair1(workdir):
    with pynng.Pair1(polyamorous=True, recv_timeout=2000) as s0:
        addr = tcp_listen(s0)
        with (
            pynng.Pair1(dial=addr, polyamorous=True, recv_timeout=2000) as s1,
            pynng.Pair1(dial=addr, polyamorous=True, recv_timeout=2000) as s2,
        ):
            wait_for(lambda: len(s0.pipes) == 2, "two pair1 pipes")
            s1.send(b"hello from s1")
            s2.send(b"hello from s2")
            msgs = sorted((s0.recv_msg() for _ in range(2)), key=lambda m: m.bytes)
            print("pair1 got:", [m.bytes for m in msgs])
            msgs[0].pipe.send(b"hey s1")
            msgs[1].pipe.send(b"hey s2")
            print("pair1 replies:", s1.recv(), s2.recv())
            print("polyamorous:", s0.polyamorous)


def callbacks(workdir):
    events = []
    done = threading.Event()
    with pynng.Pair0(recv_timeout=2000) as s0:
        addr = tcp_listen(s0)
        s0.add_pre_pipe_connect_cb(lambda p: events.append("pre"))
        s0.add_post_pipe_connect_cb(lambda p: events.append("post"))

        def removed(pipe):
            events.append("remove")
            done.set()

        s0.add_post_pipe_remove_cb(removed)
        s1 = pynng.Pair0(dial=addr)
        wait_for(lambda: "post" in events, "post connect")
        s1.close()
        done.wait(WAIT)
        print("pipe events:", events)
        wait_for(lambda: len(s0.pipes) == 0, "pipe removal")

        refused = []

        def refuse(pipe):
            refused.append(pipe.id)
            pipe.close()

        s0.add_pre_pipe_connect_cb(refuse)
        with pynng.Pair0() as s2:
            s2.dial(addr, block=False)
            wait_for(lambda: refused, "a refused pipe")
        print("refused pipes stay out:", len(s0.pipes))


def pipeline(workdir):
    with pynng.Push0() as push:
        addr = tcp_listen(push)
        with (
            pynng.Pull0(dial=addr, recv_timeout=100) as a,
            pynng.Pull0(dial=addr, recv_timeout=100) as b,
        ):
            wait_for(lambda: len(push.pipes) == 2, "two pullers")
            push.send(b"one")
            push.send(b"two")
            print("round robin:", sorted([a.recv(), b.recv()]))
            try:
                a.recv()
            except pynng.Timeout:
                print("nothing more")
            try:
                push.recv()
            except pynng.NotSupported as e:
                print("push cannot recv:", e.errno)


def reqrep(workdir):
    with pynng.Rep0(recv_timeout=2000) as rep:
        addr = tcp_listen(rep)
        with pynng.Req0(dial=addr, recv_timeout=2000, resend_time=5000) as req:
            print("resend_time:", req.resend_time)
            try:
                req.recv()
            except pynng.BadState as e:
                print("recv before send:", type(e).__name__, e.errno)
            req.send(b"random.random()")
            print("question:", rep.recv())
            rep.send(b"4")
            print("answer:", req.recv())
            contexts = [req.new_context() for _ in range(3)]
            for i, c in enumerate(contexts):
                c.send(b"q%d" % i)
            rep_ctx = rep.new_context()
            for _ in range(3):
                q = rep_ctx.recv()
                rep_ctx.send(b"a" + q[1:])
            print("context answers:", [c.recv() for c in contexts])
            for c in contexts:
                c.close()
            rep_ctx.close()
    with pynng.Pair0() as p:
        try:
            p.new_context()
        except pynng.NotSupported:
            print("pair0 has no contexts")


def pubsub(workdir):
    with pynng.Pub0() as pub:
        addr = tcp_listen(pub)
        with (
            pynng.Sub0(dial=addr, recv_timeout=2000, topics="wolf") as wolf,
            pynng.Sub0(dial=addr, recv_timeout=2000) as everything,
            pynng.Sub0(dial=addr, recv_timeout=50) as nothing,
        ):
            everything.subscribe(b"")
            everything.recv_buffer_size = 2
            wait_for(lambda: len(pub.pipes) == 3, "three subscribers")
            pub.send(b"puppy: cute")
            pub.send(b"wolf: big")
            print("wolf:", wolf.recv())
            print("everything:", everything.recv(), everything.recv())
            try:
                nothing.recv()
            except pynng.Timeout:
                print("unsubscribed gets nothing")
            try:
                wolf.unsubscribe("never")
            except pynng.NNGException as e:
                print("unsubscribe unknown:", type(e).__name__)


def survey(workdir):
    with pynng.Surveyor0(survey_time=300) as surveyor:
        addr = tcp_listen(surveyor)
        with (
            pynng.Respondent0(dial=addr, recv_timeout=2000) as r1,
            pynng.Respondent0(dial=addr, recv_timeout=2000) as r2,
        ):
            wait_for(lambda: len(surveyor.pipes) == 2, "two respondents")
            print("survey_time:", surveyor.survey_time)
            surveyor.send(b"who wants to party?")
            print("asked:", r1.recv(), r2.recv())
            r1.send(b"me me me!!!")
            r2.send(b"I need to sit this one out.")
            answers = []
            while True:
                try:
                    answers.append(surveyor.recv())
                except pynng.Timeout:
                    break
            print("answers:", sorted(answers))


def bus(workdir):
    with pynng.Bus0(recv_timeout=2000) as s0:
        addr = tcp_listen(s0)
        with (
            pynng.Bus0(dial=addr, recv_timeout=2000) as s1,
            pynng.Bus0(dial=addr, recv_timeout=100) as s2,
        ):
            wait_for(lambda: len(s0.pipes) == 2, "two bus peers")
            s0.send(b"hello buddies")
            print("bus:", s1.recv(), s2.recv())
            s1.send(b"hi s0")
            print("bus to s0:", s0.recv())
            try:
                s2.recv()
            except pynng.Timeout:
                print("s2 is not connected directly to s1")


def errors(workdir):
    with pynng.Pair0() as s0:
        addr = tcp_listen(s0)
        try:
            pynng.Pair0(listen=addr)
        except pynng.AddressInUse as e:
            print("address in use:", e.errno)
    try:
        pynng.Pair0(dial=addr, block_on_dial=True)
    except pynng.ConnectionRefused as e:
        print("refused:", e.errno)
    try:
        pynng.Pair0(listen="tcp://127.0.0.1:99999")
    except pynng.NNGException as e:
        print("bad port:", type(e).__name__)
    try:
        pynng.Pair0(bad_keyword=1)
    except TypeError:
        print("unknown keyword refused")
    with pynng.Pair0() as s:
        try:
            s.protocol = 5
        except pynng.NNGException as e:
            print("read only:", type(e).__name__)
        try:
            s.recv_timeout = 1.5
        except ValueError:
            print("fractional ms refused")


def asyncio_section(workdir):
    async def main():
        with pynng.Pair0(recv_timeout=2000) as s0:
            addr = tcp_listen(s0)
            with pynng.Pair0(dial=addr, recv_timeout=2000) as s1:
                await s1.asend(b"async hello")
                print("arecv:", await s0.arecv())
                await s0.asend_msg(pynng.Message(b"async msg"))
                msg = await s1.arecv_msg()
                print("arecv_msg:", msg.bytes, msg.pipe is s1.pipes[0])
                await msg.pipe.asend(b"via pipe")
                print("pipe asend:", s0.recv())
                s0.recv_timeout = 30
                try:
                    await s0.arecv()
                except pynng.Timeout:
                    print("async timeout")

    asyncio.run(main())


SECTIONS = {
    "pair0": pair0,
    "ipc": ipc,
    "pair1": pair1,
    "callbacks": callbacks,
    "pipeline": pipeline,
    "reqrep": reqrep,
    "pubsub": pubsub,
    "survey": survey,
    "bus": bus,
    "errors": errors,
    "asyncio": asyncio_section,
}


def main():
    workdir = sys.argv[1]
    for name in sys.argv[2:] or list(SECTIONS):
        print("==", name)
        SECTIONS[name](workdir)
    print("== done")


if __name__ == "__main__":
    main()
