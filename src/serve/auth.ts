/**
 * The bearer-token check of every service (STRATA_AUTH_TOKEN): one place, in constant time, so
 * that how long a refusal takes says nothing about how much of a guessed token was right.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";
import { UnauthenticatedError } from "./errors.js";

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();

/** Returns a check that throws UnauthenticatedError unless a call carries `authorization: Bearer <token>`; null: no check. */
export function bearerCheck(token: string | null): (metadata: Metadata) => void {
  if (token === null) return () => {};
  const expected = digest(`Bearer ${token}`);
  return (metadata) => {
    const header = metadata.get("authorization")[0];
    // Digests: equal lengths whatever was sent, as timingSafeEqual needs.
    if (typeof header !== "string" || !timingSafeEqual(digest(header), expected))
      throw new UnauthenticatedError("Missing or wrong bearer token");
  };
}
