/**
 * FeatureStore's hot methods with bytes in and out, no codec: how the bench's client sends
 * pre-encoded requests and takes responses undecoded, and how the ceiling server answers.
 */
/** The identity codec: messages stay the bytes they came as (also what tests of raw methods use). */
export const RAW_CODEC = {
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
    ...RAW_CODEC,
  },
  StreamFeatures: {
    path: "/strata.v1.FeatureStore/StreamFeatures",
    requestStream: true,
    responseStream: true,
    ...RAW_CODEC,
  },
  ScanTable: {
    path: "/strata.v1.FeatureStore/ScanTable",
    requestStream: false,
    responseStream: true,
    ...RAW_CODEC,
  },
};
