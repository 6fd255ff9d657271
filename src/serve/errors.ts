import { StrataError } from "../shared/errors.js";

/** A request that can never succeed as sent: INVALID_ARGUMENT. */
export class RequestError extends StrataError {
  readonly code = "STRATA_REQUEST_INVALID";
}

/** A request over the server's limits (keys, bytes): RESOURCE_EXHAUSTED. */
export class RequestTooLargeError extends StrataError {
  readonly code = "STRATA_REQUEST_TOO_LARGE";
}

/** A call without the bearer token the server requires: UNAUTHENTICATED. */
export class UnauthenticatedError extends StrataError {
  readonly code = "STRATA_UNAUTHENTICATED";
}
