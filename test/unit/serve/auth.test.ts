import { describe, expect, it } from "vitest";
import { Metadata } from "@grpc/grpc-js";
import { bearerCheck } from "../../../src/serve/auth.js";
import { UnauthenticatedError } from "../../../src/serve/errors.js";

const withHeader = (value?: string): Metadata => {
  const md = new Metadata();
  if (value !== undefined) md.set("authorization", value);
  return md;
};

describe("bearerCheck", () => {
  it("lets through exactly `Bearer <token>`", () => {
    const check = bearerCheck("s3cret");
    expect(() => check(withHeader("Bearer s3cret"))).not.toThrow();
    for (const wrong of [
      undefined,
      "",
      "Bearer s3cres",
      "Bearer s3cret ",
      "bearer s3cret",
      "s3cret",
      "Bearer x",
    ])
      expect(() => check(withHeader(wrong)), String(wrong)).toThrow(UnauthenticatedError);
  });

  it("checks nothing without a token", () => {
    expect(() => bearerCheck(null)(withHeader())).not.toThrow();
  });
});
