/**
 * Loads proto/strata/v1/feature_store.proto with one set of loader options for the server, the
 * client module and the tests, and swaps in the hand-written codecs of the hot methods.
 */
import { fileURLToPath } from "node:url";
import { loadSync, type Options, type PackageDefinition, type MethodDefinition } from "@grpc/proto-loader";
import { decodeGetFeaturesRequest } from "./request-decoder.js";

export const PROTO_ROOT = fileURLToPath(new URL("../../proto", import.meta.url));
export const FEATURE_STORE_PROTO = "strata/v1/feature_store.proto";
export const SERVICE_NAME = "strata.v1.FeatureStore";

export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export function loadFeatureStoreProto(): PackageDefinition {
  return loadSync(FEATURE_STORE_PROTO, PROTO_LOADER_OPTIONS);
}

/**
 * The server's package definition: GetFeatures and StreamFeatures take requests through the
 * strict hand decoder and send responses that are already encoded Buffers as they are.
 */
export function loadServerProto(): PackageDefinition {
  const pkg = loadFeatureStoreProto();
  const service = pkg[SERVICE_NAME] as Record<string, MethodDefinition<unknown, unknown>>;
  for (const name of ["GetFeatures", "StreamFeatures"]) {
    const method = service[name]!;
    const encodeObject = method.responseSerialize;
    method.requestDeserialize = decodeGetFeaturesRequest as (b: Buffer) => unknown;
    method.responseSerialize = (value: unknown) => (Buffer.isBuffer(value) ? value : encodeObject(value));
  }
  const scan = service.ScanTable!;
  const encodeScan = scan.responseSerialize;
  scan.responseSerialize = (value: unknown) => (Buffer.isBuffer(value) ? value : encodeScan(value));
  return pkg;
}
