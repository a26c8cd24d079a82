#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the examples of
docs/protocol.md, wire/README.md, the OCPP rows of tests/wire/ocpp_test.cpp and
known-bad inputs. Run from anywhere; rewrites the seed files it names (files
that libFuzzer added are left alone)."""
import json
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)

# --- wire frames -------------------------------------------------------------
frames = {
    "reading": '{"device":"meter-7","seq":42,"ts":1731801715542,"values":{"voltage":230.4,"current":5.1}}',
    "reading_meta": '{"device":"meter-7","seq":42,"ts":1731801715542,"values":{"voltage":230.4},"meta":{"fw":"1.2","cores":8,"v":2.50}}',
    "reading_rfc3339": '{"device":"meter-7","ts":"2024-11-17T00:01:50.123+02:00","values":{"voltage":231}}',
    "reading_no_ts_no_seq": '{"values":{"v":1},"device":"m:1.a_b-c"}',
    "batch": '{"device":"meter-7","readings":[{"seq":43,"ts":1731801715600,"values":{"voltage":231}},{"seq":44,"values":{"voltage":232,"current":1e-3}}],"meta":{"fw":"1"}}',
    "batch_readings_first": '{"readings":[{"seq":1,"values":{"a":1}}],"device":"d"}',
    "array": '[{"device":"a","seq":1,"values":{"x":1}},{"device":"b","seq":2,"values":{"y":-2.5e10}},{"device":"a","seq":3,"values":{"x":3,"z":0}}]',
    "hello": '{"hello":{"device":"meter-7","token":"secret"}}',
    "subscribe": '{"subscribe":["battery:1:data","meter-*","*"]}',
    "unsubscribe_hello": '{"unsubscribe":["meter-*"],"hello":{"device":"x"},"subscribe":["y"]}',
    "bad_json_truncated": '{"device":"a","values":{"x":1}',
    "bad_json_trailing": '{"device":"a","values":{"x":1}} x',
    "bad_json_in_skipped": '{"device":"a","values":{"x":1},"extra":[1,2,}',
    "bad_scalar": '42',
    "bad_nan": '{"device":"a","values":{"x":NaN}}',
    "bad_huge_number": '{"device":"a","values":{"x":1e400,"y":-1e400}}',
    "bad_value_types": '{"device":"a","values":{"s":"1","n":null,"b":true,"o":{},"a":[1]}}',
    "bad_seq": '[{"device":"a","seq":-1,"values":{"x":1}},{"device":"a","seq":1.5,"values":{"x":1}},{"device":"a","seq":18446744073709551616,"values":{"x":1}},{"device":"a","seq":"5","values":{"x":1}}]',
    "bad_ts": '[{"device":"a","ts":-1,"values":{"x":1}},{"device":"a","ts":99999999999999,"values":{"x":1}},{"device":"a","ts":"1969-12-31T23:59:59Z","values":{"x":1}},{"device":"a","ts":"2023-02-30T00:00:00Z","values":{"x":1}},{"device":"a","ts":1.5,"values":{"x":1}}]',
    "bad_device": '[{"device":"","values":{"x":1}},{"device":"a b","values":{"x":1}},{"device":5,"values":{"x":1}},{"values":{"x":1}}]',
    "bad_metrics": '{"device":"a","values":{"x y":1,"x":1,"x":2}}',
    "empty_values": '{"device":"a","values":{}}',
    "unknown_type": '{"foo":{"bar":1}}',
    "unknown_field": '{"device":"a","values":{"x":1},"readings":[]}',
    "mixed_kinds": '[{"hello":{"device":"x"}},{"device":"a","readings":[{"values":{"x":1}}]},1,"s",null]',
    "duplicate_keys": '{"device":"a","device":"b","seq":1,"seq":2,"values":{"x":1}}',
    "escaped_strings": '{"device":"a\\u0041","values":{"x\\u0031":1},"meta":{"k\\"":"\\ud83d\\ude00\\n"}}',
    "deep_meta": '{"device":"a","values":{"x":1},"meta":{"a":' + "[" * 40 + "]" * 40 + '}}',
    "many_metrics": '{"device":"a","values":{' + ",".join('"m%d":%d' % (i, i) for i in range(66)) + '}}',
    "batch_bad_rows": '{"device":"a","readings":[1,{},{"values":{"x":1}},{"device":"b","values":{"x":1}}]}',
    "empty": '',
    "whitespace": ' \t\r\n',
    "bad_utf8": b'{"device":"a","values":{"x":1},"meta":{"k":"\xff\xfe"}}',
    "control_char": b'{"device":"a\x01","values":{"x":1}}',
}

# OCPP rows as the tests use them (objects and payload strings).
ocpp_test = open(os.path.join(root, "tests/wire/ocpp_test.cpp")).read()
rows = re.findall(r'\{\d+,\s*"([A-Za-z0-9]+)",\s*R"\((\{.*?\})\)"\}', ocpp_test, re.S)
for i, (cp, payload) in enumerate(rows[:5]):
    frames["ocpp_%d" % i] = '{"charge_point_id":"%s","payload":%s}' % (cp, payload)
    frames["ocpp_string_%d" % i] = json.dumps({"charge_point_id": cp, "payload": payload},
                                              separators=(",", ":"))
frames["ocpp_phases"] = ('{"charge_point_id":"cp","payload":{"connectorId":0,"meterValue":[{"timestamp":'
                         '"2023-09-17T20:29:59Z","sampledValue":[{"value":"230","measurand":"Voltage",'
                         '"phase":"L1-N","unit":"V"},{"value":"NaN"},{"value":"0x10"},{"value":" 6 "},'
                         '{"value":1.5,"measurand":"Voltage","phase":"L1-N"}]}]}}')
frames["ocpp_bad_payload_string"] = '{"charge_point_id":"cp","payload":"{\\"meterValue\\":["}'
frames["ocpp_no_timestamp"] = '{"charge_point_id":"cp","payload":{"meterValue":[{"sampledValue":[{"value":"1"}]}],"x":1}}'

# --- HTTP bodies (NDJSON or one array) ----------------------------------------
ndjson_lines = [frames["reading"], frames["batch"], frames["ocpp_0"] if "ocpp_0" in frames else frames["reading"]]
bodies = {
    "ndjson": "\n".join(ndjson_lines) + "\n",
    "ndjson_crlf": "\r\n".join(ndjson_lines) + "\r\n",
    "ndjson_bad_line": frames["reading"] + "\n{not json\n" + frames["array"] + "\n\n",
    "array": frames["array"],
    "pretty": json.dumps(json.loads(frames["batch"]), indent=2),
    "hello_line": frames["hello"] + "\n" + frames["reading"],
    "all_bad": "x\ny\n{",
    "empty": "",
}
for name in ["bad_seq", "bad_ts", "bad_device", "mixed_kinds", "ocpp_phases", "bad_utf8"]:
    bodies[name] = frames[name]

# --- HTTP query targets --------------------------------------------------------
queries = [
    "/api/v1/devices",
    "/api/v1/devices?prefix=meter-&limit=1",
    "/api/v1/devices?prefix=&limit=&cursor=meter-1",
    "/api/v1/devices/meter-1",
    "/api/v1/devices/battery%3A1%3Adata",
    "/api/v1/devices/meter-1/readings?from=1731801600000&to=1731805200000&limit=3",
    "/api/v1/devices/meter-1/readings?limit=2&cursor=AAAAAAAAAAA",
    "/api/v1/devices/meter-1/readings?from=2024-11-17T00:00:00Z&to=2024-11-17T06:00:00.5%2B01:00",
    "/api/v1/devices/meter-1/aggregate?metric=voltage&step=1h&fn=avg,min,max,sum,count,first,last",
    "/api/v1/devices/meter-1/aggregate?metric=voltage&from=1731801600000&to=1731805200000&step=250ms&fn=count",
    "/api/v1/devices/meter-1/aggregate?metric=current&step=1d",
    "/api/v1/devices/meter-2/aggregate?metric=voltage",
    "/api/v1/aggregate?metric=voltage&step=1m&prefix=meter&group_by=device&fn=sum",
    "/api/v1/aggregate?metric=voltage&from=0&to=253402300800000",
    "/api/v1/devices/../../etc/passwd",
    "/api/v1/devices/%2e%2e/%2e%2e/etc/passwd",
    "/api/v1/devices/..%2f..%2fetc%2fpasswd",
    "/api/v1//devices",
    "/api/v1/devices/meter-1/aggregate?step=1h",
    "/api/v1/devices/meter-1/aggregate?metric=voltage&step=0s",
    "/api/v1/devices/meter-1/aggregate?metric=voltage&step=1ms&from=0",
    "/api/v1/devices/meter-1/aggregate?metric=voltage&from=5&to=4",
    "/api/v1/devices/meter-1/aggregate?metric=voltage&fn=median",
    "/api/v1/devices/meter-1/readings?limit=0&cursor=%zz",
    "/api/v1/devices?form=1&form=2",
    "/api/v1/devices/meter-1?x=1",
    "/api/v1/aggregate?metric=v&group_by=node",
    "relative/path",
    # storage's cursor: 'c', ts and seq as 16 hex digits each
    "/api/v1/devices/meter-1/readings?limit=2&cursor=c%016x%016x" % (1731801600000 + 12 * 60000, 3),
    "/api/v1/devices/battery:1:data/readings?cursor=c%016x%016x&to=1731820000000" % (1731801600001, 59),
    "/api/v1/devices/meter-1/readings?cursor=c%016x%016x" % (253402300799999, 2**64 - 1),
    "/api/v1/devices/meter-1/readings?cursor=c%016x%016x" % (253402300800000, 0),
    "/api/v1/devices/%00",
]

def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

for name, data in frames.items():
    write("wire_frame", name, data)
for name, data in bodies.items():
    write("wire_body", name, data)
for i, q in enumerate(queries):
    write("query_api", "q%02d" % i, q)
