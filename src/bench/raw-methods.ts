/**
 * FeatureStore's hot methods with bytes in and out, no codec: how the bench's client sends
 * pre-encoded requests and takes responses undecoded, and how the ceiling server answers.
 */
const raw = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

export const RAW_METHODS = {
  GetFeatures: {
    path: "/strata.v1.FeatureStore/GetFeatures",
    requestStream: false,
    responseStream: false,
    ...raw,
  },
  StreamFeatures: {
    path: "/strata.v1.FeatureStore/StreamFeatures",
    requestStream: true,
    responseStream: true,
    ...raw,
  },
  ScanTable: {
    path: "/strata.v1.FeatureStore/ScanTable",
    requestStream: false,
    responseStream: true,
    ...raw,
  },
};
