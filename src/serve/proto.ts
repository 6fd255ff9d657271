/**
 * Loads proto/strata/v1/feature_store.proto with one set of loader options for the server, the
 * client module and the tests, and swaps in the hand-written codecs of the hot methods.
 */
import { fileURLToPath } from "node:url";
import { loadSync, type Options, type PackageDefinition, type MethodDefinition } from "@grpc/proto-loader";
import { decodeGetFeaturesRequest } from "./request-decoder.js";
import { RequestError } from "./errors.js";
import { errorMessage } from "../shared/errors.js";

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
  tolerateMalformedRequests(service);
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

/** Marks a request that did not decode (tolerateMalformedRequests); requireWellFormed refuses it. */
const MALFORMED = Symbol("malformed request");

/**
 * grpc-js answers a request its deserializer throws on with INTERNAL, the status of a bug; a
 * message that does not parse is the client's mistake. So the service's methods decode such a
 * message to a marked object instead, which the handler refuses as INVALID_ARGUMENT through
 * requireWellFormed. (GetFeatures and StreamFeatures have their own decoder, which does the same.)
 */
export function tolerateMalformedRequests(service: Record<string, MethodDefinition<unknown, unknown>>): void {
  for (const [name, method] of Object.entries(service)) {
    const decode = method.requestDeserialize;
    method.requestDeserialize = (bytes: Buffer) => {
      try {
        return decode(bytes);
      } catch (err) {
        return { [MALFORMED]: `Malformed ${name} request: ${errorMessage(err)}` };
      }
    };
  }
}

/** Throws the RequestError a request that did not decode stands for. */
export function requireWellFormed(request: unknown): void {
  const why = (request as { [MALFORMED]?: string } | null | undefined)?.[MALFORMED];
  if (why !== undefined) throw new RequestError(why);
}
