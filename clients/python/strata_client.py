"""A small Python client for Strata's FeatureStore API (docs/api.md), for model servers in Python.

It needs grpcio and protobuf, and the message classes generated from Strata's proto once, with
protoc or grpcio-tools, into a directory on sys.path:

    protoc -I proto --python_out=gen proto/strata/v1/feature_store.proto
    # or: python -m grpc_tools.protoc -I proto --python_out=gen proto/strata/v1/feature_store.proto

Then:

    from strata_client import StrataClient

    with StrataClient("127.0.0.1:50051") as strata:
        res = strata.get_features("users", ["user:1", "user:2"], features=["age", "emb"])
        for row in res.rows:
            print(row.key, row.status, row.values)   # {"age": 45, "emb": [0.27, ...]} or None

Values come as Python values (float, int, bool, str, bytes, a list of floats for a vector, None
for null); a row that is not FOUND has `values` None. Calls raise grpc.RpcError with the status
codes docs/api.md lists. Only the grpc stubs' plumbing is here: no code generated for services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence

import grpc
from strata.v1 import feature_store_pb2 as pb

_SERVICE = "/strata.v1.FeatureStore/"
# The server answers in messages of up to 64 MiB (scans of large rows); a 1 MiB flow-control
# window doubled streaming throughput in Strata's own measurements.
_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.http2.lookahead_bytes", 1 << 20),
]

ROW_STATUS = {v.number: v.name for v in pb.RowStatus.DESCRIPTOR.values}


@dataclass
class Row:
    key: str
    status: str  # ROW_STATUS_FOUND, ROW_STATUS_NOT_FOUND, ROW_STATUS_OUTSIDE_MAX_AGE, ROW_STATUS_DATA_LOSS
    event_time_ms: int
    values: Optional[dict[str, Any]]  # feature name -> value, for FOUND rows


@dataclass
class Features:
    table: str
    version: int  # the one version every row was read from
    features: list[str]
    rows: list[Row]
    request_id: int = 0
    # StreamFeatures: the request failed as a whole (no rows); the stream goes on.
    error: Optional["StreamRequestError"] = None


def feature_value(v: pb.FeatureValue) -> Any:
    """A FeatureValue as a Python value (None for null)."""
    kind = v.WhichOneof("value")
    if kind is None or kind == "null_value":
        return None
    if kind == "float32_vector_value":
        return list(v.float32_vector_value.values)
    return getattr(v, kind)


def _rows(features: Sequence[str], rows: Iterable[pb.Row]) -> list[Row]:
    out = []
    for r in rows:
        found = r.status == pb.ROW_STATUS_FOUND
        values = {name: feature_value(v) for name, v in zip(features, r.values)} if found else None
        out.append(Row(r.key, ROW_STATUS.get(r.status, str(r.status)), r.event_time_ms, values))
    return out


def _features(res: pb.GetFeaturesResponse) -> Features:
    error = None
    if res.error_code != 0:  # a StreamFeatures answer to a request that failed as a whole
        error = StreamRequestError(_STATUS_BY_NUMBER[res.error_code], res.error_message, res.request_id)
    rows = _rows(res.features, res.rows)
    return Features(res.table, res.version, list(res.features), rows, res.request_id, error)


_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class StreamRequestError(Exception):
    """Why one request of a StreamFeatures stream failed as a whole (the stream went on)."""

    def __init__(self, code: grpc.StatusCode, message: str, request_id: int):
        super().__init__(f"{code.name}: {message} (request {request_id})")
        self.code, self.message, self.request_id = code, message, request_id


class StrataClient:
    """A channel to one Strata server (or a load balancer in front of several)."""

    def __init__(
        self,
        target: str,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        token: Optional[str] = None,
        options: Sequence[tuple[str, Any]] = (),
    ):
        opts = _OPTIONS + list(options)
        self._channel = (
            grpc.secure_channel(target, credentials, opts) if credentials else grpc.insecure_channel(target, opts)
        )
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None

        def call(kind: str, name: str, request: Any, response: Any):
            return getattr(self._channel, kind)(
                _SERVICE + name,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        self._get = call("unary_unary", "GetFeatures", pb.GetFeaturesRequest, pb.GetFeaturesResponse)
        self._stream = call("stream_stream", "StreamFeatures", pb.GetFeaturesRequest, pb.GetFeaturesResponse)
        self._scan = call("unary_stream", "ScanTable", pb.ScanTableRequest, pb.ScanTableResponse)
        self._list = call("unary_unary", "ListTables", pb.ListTablesRequest, pb.ListTablesResponse)
        self._describe = call("unary_unary", "DescribeTable", pb.DescribeTableRequest, pb.DescribeTableResponse)

    def get_features(
        self,
        table: str,
        keys: Sequence[str],
        features: Sequence[str] = (),
        *,
        version: int = 0,
        timeout: Optional[float] = None,
    ) -> Features:
        """Rows for `keys` (in their order), all from one version: the current one, or `version`."""
        request = pb.GetFeaturesRequest(table=table, keys=keys, features=features, version=version)
        return _features(self._get(request, timeout=timeout, metadata=self._metadata))

    def stream_features(
        self, requests: Iterable[tuple[str, Sequence[str]]], features: Sequence[str] = ()
    ) -> Iterator[Features]:
        """One long-lived stream for many (table, keys) requests; answers come in the same order,
        each with its request_id (the request's position). A request that failed as a whole (an
        unknown table, too many keys) is answered with `error` set and no rows; the stream goes
        on. A failure of the stream itself raises grpc.RpcError."""
        messages = (
            pb.GetFeaturesRequest(table=table, keys=keys, features=features, request_id=i)
            for i, (table, keys) in enumerate(requests)
        )
        for res in self._stream(messages, metadata=self._metadata):
            yield _features(res)

    def scan_table(
        self,
        table: str,
        *,
        version: int = 0,
        features: Sequence[str] = (),
        shard: int = 0,
        shard_count: int = 0,
        resume_token: bytes = b"",
    ) -> Iterator[tuple[Features, bytes]]:
        """Every row of one version, in chunks, each with the token that resumes the scan after
        it (pass it as `resume_token` to go on, on any server that retains the version)."""
        request = pb.ScanTableRequest(
            table=table,
            version=version,
            features=features,
            shard=shard,
            shard_count=shard_count,
            resume_token=resume_token,
        )
        for chunk in self._scan(request, metadata=self._metadata):
            rows = _rows(chunk.features, chunk.rows)
            yield Features(chunk.table, chunk.version, list(chunk.features), rows), chunk.resume_token

    def list_tables(self) -> list[pb.TableInfo]:
        return list(self._list(pb.ListTablesRequest(), metadata=self._metadata).tables)

    def describe_table(self, table: str) -> pb.TableInfo:
        return self._describe(pb.DescribeTableRequest(table=table), metadata=self._metadata).table

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "StrataClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
