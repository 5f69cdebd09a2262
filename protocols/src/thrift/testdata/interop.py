#!/usr/bin/env python3
"""Byte-level interop between Gatehouse's Thrift codecs and Apache Thrift's Python library.

Needs the Thrift compiler and the Python library:
    apt-get install -y thrift-compiler
    python3 -m venv /tmp/thriftvenv && /tmp/thriftvenv/bin/pip install thrift

Usage (from the repository root):
    /tmp/thriftvenv/bin/python protocols/src/thrift/testdata/interop.py generate
        Encodes calls and replies with the generated Python code (binary and compact,
        framed and buffered) and writes python_vectors.json next to this script. The Rust
        unit test `thrift::json::interop::python_vectors` decodes every vector to JSON,
        compares it with the expected JSON, and re-encodes that JSON, asserting the exact
        same bytes.
    /tmp/thriftvenv/bin/python protocols/src/thrift/testdata/interop.py check
        Regenerates the vectors in a temporary file and checks they match the committed
        ones, then runs the ignored Rust test `python_vectors_emit`, which writes the Rust
        encodings, and decodes each of them with the Python classes, comparing objects.
        Exit status 0 when everything matches.
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
IDL = os.path.join(HERE, "gatehouse_test.thrift")
VECTORS = os.path.join(HERE, "python_vectors.json")


def load_generated(outdir):
    subprocess.run(["thrift", "--gen", "py", "-out", outdir, IDL], check=True)
    sys.path.insert(0, outdir)
    from gatehouse_test import Base, Test, ttypes  # noqa: E402

    # Inherited methods' args/result classes live in the base service's module.
    Test.ping_result = Base.ping_result
    return Test, ttypes


def protocols():
    from thrift.protocol import TBinaryProtocol, TCompactProtocol

    return {
        "binary": TBinaryProtocol.TBinaryProtocol,
        "compact": TCompactProtocol.TCompactProtocol,
    }


def encode(proto_name, transport, name, mtype, seqid, obj, multiplexed=None):
    from thrift.protocol import TMultiplexedProtocol
    from thrift.transport import TTransport

    buf = TTransport.TMemoryBuffer()
    trans = TTransport.TFramedTransport(buf) if transport == "framed" else buf
    proto = protocols()[proto_name](trans)
    if multiplexed:
        proto = TMultiplexedProtocol.TMultiplexedProtocol(proto, multiplexed)
    proto.writeMessageBegin(name, mtype, seqid)
    obj.write(proto)
    proto.writeMessageEnd()
    trans.flush()
    return buf.getvalue()


def decode(proto_name, transport, data, obj):
    from thrift.transport import TTransport

    buf = TTransport.TMemoryBuffer(data)
    trans = TTransport.TFramedTransport(buf) if transport == "framed" else buf
    proto = protocols()[proto_name](trans)
    header = proto.readMessageBegin()
    obj.read(proto)
    proto.readMessageEnd()
    return header, obj


def cases(Test, t):
    """(name, kind, method, wire name, message type, seqid, object, expected JSON text, extra)."""
    from thrift.Thrift import TApplicationException, TMessageType

    everything = t.All(
        b=True, y=-128, s16=32767, s32=-2147483648, s64=9223372036854775807, d=2.5,
        str="h\u00e9llo \"q\"\n", bin=b"\x00\x01\x02\xfd\xfe\xff", color=t.Color.GREEN,
        nested=[[1, 2], [], [3]], tags={"a"}, by_int={-2: "minus two"},
        by_name={"k": t.Inner(s="v", nums=[7])}, choice=t.Choice(point=t.Point(x=0, y=-1)),
        by_color={t.Color.RED: True}, by_long={9007199254740993: 0.5},
        flags=[True, False] * 8, by_bool={True: b"\x01"}, child=t.All(s32=1),
    )
    everything_json = (
        '{"b":true,"y":-128,"s16":32767,"s32":-2147483648,"s64":"9223372036854775807","d":2.5,'
        '"str":"h\u00e9llo \\"q\\"\\n","bin":"AAEC/f7/","color":"GREEN","nested":[[1,2],[],[3]],'
        '"tags":["a"],"by_int":{"-2":"minus two"},"by_name":{"k":{"s":"v","nums":[7]}},'
        '"choice":{"point":{"x":0,"y":-1}},"by_color":{"RED":true},'
        '"by_long":{"9007199254740993":0.5},'
        '"flags":[true,false,true,false,true,false,true,false,true,false,true,false,true,false,true,false],'
        '"by_bool":{"true":"AQ=="},"child":{"s32":1}}'
    )
    call, reply, exc, oneway = TMessageType.CALL, TMessageType.REPLY, TMessageType.EXCEPTION, TMessageType.ONEWAY
    return [
        ("echo_call", "call", "echo", "echo", call, 1, Test.echo_args(a=everything),
         '{"a":' + everything_json + "}", None),
        ("move_call", "call", "move", "move", call, 300, Test.move_args(p=t.Point(x=1, y=2), dx=-5, c=t.Color.BLUE),
         '{"p":{"x":1,"y":2},"dx":-5,"c":"BLUE"}', None),
        ("find_call_multiplexed", "call", "find", "Test:find", call, -7, Test.find_args(id=-(2 ** 62)),
         '{"id":"-4611686018427387904"}', "Test"),
        ("fire_oneway", "call", "fire", "fire", oneway, 2 ** 31 - 1, Test.fire_args(msg="boom"),
         '{"msg":"boom"}', None),
        ("echo_reply", "reply", "echo", "echo", reply, 1, Test.echo_result(success=everything),
         everything_json, "success"),
        ("find_reply_exception", "reply", "find", "find", reply, 2,
         Test.find_result(nf=t.NotFound(what="user", id=2 ** 62)),
         '{"what":"user","id":"4611686018427387904"}', "nf"),
        ("count_reply", "reply", "count", "count", reply, 3, Test.count_result(success=9007199254740993),
         '"9007199254740993"', "success"),
        ("ping_reply_void", "reply", "ping", "ping", reply, 4, Test.ping_result(), "null", "success"),
        ("find_app_exception", "reply", "find", "find", exc, 5,
         TApplicationException(TApplicationException.UNKNOWN_METHOD, "no method find"), "", "app:1"),
    ]


def generate(path):
    with tempfile.TemporaryDirectory() as gen:
        Test, t = load_generated(gen)
        vectors = []
        for proto in ("binary", "compact"):
            for transport in ("framed", "buffered"):
                for (name, kind, method, wire, mtype, seqid, obj, js, extra) in cases(Test, t):
                    multiplexed = extra if kind == "call" else None
                    data = encode(proto, transport, method, mtype, seqid, obj, multiplexed)
                    vectors.append({
                        "name": name, "protocol": proto, "transport": transport, "kind": kind,
                        "method": method, "wire_name": wire, "seqid": seqid,
                        "result": extra if kind == "reply" else None,
                        "json": js, "hex": data.hex(),
                    })
    with open(path, "w") as f:
        json.dump(vectors, f, indent=1)
        f.write("\n")
    print(f"{len(vectors)} vectors written to {path}")


def check():
    with tempfile.TemporaryDirectory() as tmp:
        fresh = os.path.join(tmp, "vectors.json")
        generate(fresh)
        with open(fresh) as a, open(VECTORS) as b:
            if json.load(a) != json.load(b):
                print("python_vectors.json differs from what Python encodes now: run `generate`")
                return 1
        emitted = os.path.join(tmp, "rust.json")
        env = dict(os.environ, GATEHOUSE_THRIFT_EMIT=emitted)
        subprocess.run(["cargo", "test", "-p", "protocols", "--lib", "python_vectors", "--", "--include-ignored"],
                       check=True, env=env)
        with open(emitted) as f:
            rust = json.load(f)
        gen = os.path.join(tmp, "gen")
        os.mkdir(gen)
        Test, t = load_generated(gen)
        from thrift.Thrift import TApplicationException
        expected = {c[0]: c for c in cases(Test, t)}
        failures = 0
        for item in rust:
            (_, kind, method, wire, mtype, seqid, obj, _, _) = expected[item["name"]]
            empty = TApplicationException() if isinstance(obj, TApplicationException) else type(obj)()
            (name, got_type, got_seqid), got = decode(item["protocol"], item["transport"], bytes.fromhex(item["hex"]), empty)
            ok = (name, got_type, got_seqid) == (wire if kind == "call" else method, mtype, seqid) and got == obj
            if not ok:
                failures += 1
                print(f"MISMATCH {item['name']} {item['protocol']}/{item['transport']}: {got!r}")
        print(f"{len(rust) - failures} passed, {failures} failed")
        return 1 if failures else 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode == "generate":
        generate(VECTORS)
    elif mode == "check":
        sys.exit(check())
    else:
        sys.exit(__doc__)
