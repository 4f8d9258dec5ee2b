"""Argument-type vectors from real Twisted, for test/argument.test.ts.

Reads one JSON object on stdin:

    {"type":   SPEC,                 # the argument type, see below
     "encode": [VALUE, ...],         # values to encode with Twisted's Argument.toStringProto
     "decode": [hex, ...]}           # wire bytes to decode with Argument.fromStringProto

(or a JSON list of such objects, answered with a list) and writes one JSON object on stdout:

    {"encoded": [hex | {"error": "ExceptionType: message"}, ...],
     "decoded": [{"value": VALUE, "reencoded": hex | {"error": ...}} | {"error": ...}, ...]}

"reencoded" is Twisted encoding its own decoded value again.

SPEC is "Integer" | "String" | "Unicode" | "Float" | "Boolean" | "Decimal" | "DateTime" | "Path"
| {"ListOf": SPEC} | {"AmpList": [[wireName, SPEC, optional], ...]}.

VALUE, the JSON form of a value of each type:
    Integer   decimal digits as a string ("-42")
    String    hex of the bytes
    Unicode   the string
    Float     16 hex digits: the IEEE 754 double, big-endian
    Boolean   true / false
    Decimal   [sign, digits, exponent] as decimal.Decimal.as_tuple() with digits joined ("" for NaN
              without payload and for Infinity) and exponent an int or "F" / "n" / "N"
    DateTime  [year, month, day, hour, minute, second, microsecond, offsetMinutes]
    Path      the path string
    ListOf    a list of element VALUEs
    AmpList   a list of objects keyed by wire name; absent optional keys are left out
"""
import datetime
import decimal
import json
import struct
import sys

from twisted.python import filepath
from twisted.protocols import amp

SIMPLE = {
    "Integer": amp.Integer,
    "String": amp.String,
    "Unicode": amp.Unicode,
    "Float": amp.Float,
    "Boolean": amp.Boolean,
    "Decimal": amp.Decimal,
    "DateTime": amp.DateTime,
    "Path": amp.Path,
}


def build(spec, optional=False):
    if isinstance(spec, str):
        return SIMPLE[spec](optional=optional)
    if "ListOf" in spec:
        return amp.ListOf(build(spec["ListOf"]), optional=optional)
    if "AmpList" in spec:
        return amp.AmpList(
            [(name.encode("latin-1"), build(sub, opt)) for name, sub, opt in spec["AmpList"]],
            optional=optional,
        )
    raise ValueError("bad spec %r" % (spec,))


def from_json(spec, v):
    if isinstance(spec, str):
        if spec == "Integer":
            # the JSON text may exceed CPython's 4300-digit limit on purpose: lift it just to build the int
            limit = sys.get_int_max_str_digits()
            sys.set_int_max_str_digits(0)
            try:
                return int(v)
            finally:
                sys.set_int_max_str_digits(limit)
        if spec == "String":
            return bytes.fromhex(v)
        if spec == "Unicode":
            return v
        if spec == "Float":
            return struct.unpack(">d", bytes.fromhex(v))[0]
        if spec == "Boolean":
            return v
        if spec == "Decimal":
            sign, digits, exp = v
            if exp == "F":
                return decimal.Decimal("-Infinity" if sign else "Infinity")
            if exp in ("n", "N"):
                return decimal.Decimal(("-" if sign else "") + ("sNaN" if exp == "N" else "NaN") + digits)
            return decimal.Decimal((sign, tuple(int(c) for c in digits), exp))
        if spec == "DateTime":
            y, mo, d, h, mi, s, us, off = v
            tz = datetime.timezone(datetime.timedelta(minutes=off))
            return datetime.datetime(y, mo, d, h, mi, s, us, tzinfo=tz)
        if spec == "Path":
            return filepath.FilePath(v)
    if "ListOf" in spec:
        return [from_json(spec["ListOf"], e) for e in v]
    if "AmpList" in spec:
        out = []
        for element in v:
            d = {}
            for name, sub, _opt in spec["AmpList"]:
                if name in element:
                    d[amp._wireNameToPythonIdentifier(name.encode("latin-1"))] = from_json(sub, element[name])
            out.append(d)
        return out
    raise ValueError("bad spec %r" % (spec,))


def to_json(spec, v):
    if isinstance(spec, str):
        if spec == "Integer":
            return str(v)
        if spec == "String":
            return v.hex()
        if spec == "Unicode":
            return v
        if spec == "Float":
            return struct.pack(">d", v).hex()
        if spec == "Boolean":
            return v
        if spec == "Decimal":
            t = v.as_tuple()
            digits = "".join(str(c) for c in t.digits)
            if t.exponent == "F" or (t.exponent in ("n", "N") and digits == "0"):
                digits = ""
            return [t.sign, digits, t.exponent]
        if spec == "DateTime":
            off = v.utcoffset()
            minutes = (off.days * 86400 + off.seconds) // 60
            return [v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, minutes]
        if spec == "Path":
            return v.path
    if "ListOf" in spec:
        return [to_json(spec["ListOf"], e) for e in v]
    if "AmpList" in spec:
        out = []
        for element in v:
            d = {}
            for name, sub, _opt in spec["AmpList"]:
                value = element[amp._wireNameToPythonIdentifier(name.encode("latin-1"))]
                if value is not None:
                    d[name] = to_json(sub, value)
            out.append(d)
        return out
    raise ValueError("bad spec %r" % (spec,))


def error(e):
    return {"error": "%s: %s" % (type(e).__name__, e)}


def encode(arg, value):
    try:
        return arg.toStringProto(value, None).hex()
    except Exception as e:
        return error(e)


def run(request):
    spec = request["type"]
    arg = build(spec)
    encoded = [encode(arg, from_json(spec, v)) for v in request.get("encode", [])]
    decoded = []
    for h in request.get("decode", []):
        try:
            value = arg.fromStringProto(bytes.fromhex(h), None)
            # datetime validates the offset lazily: make sure it is usable
            if spec == "DateTime":
                value.utcoffset()
            decoded.append({"value": to_json(spec, value), "reencoded": encode(arg, value)})
        except Exception as e:
            decoded.append(error(e))
    return {"encoded": encoded, "decoded": decoded}


def main():
    request = json.load(sys.stdin)
    if isinstance(request, list):
        json.dump([run(r) for r in request], sys.stdout)
    else:
        json.dump(run(request), sys.stdout)


if __name__ == "__main__":
    main()
