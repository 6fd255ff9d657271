export async function benchServe(_o: { quick: boolean }): Promise<never> { throw new Error("not yet"); }
