import { createRequire } from "node:module";
import type {
  MethodDefinition,
  Server,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type * as HealthLib from "grpc-health-check";
import type * as ReflectionLib from "@grpc/reflection";

/**
 * gRPC health checking and server reflection, with their libraries loaded at their first call
 * instead of at process start: grpc-health-check parses its .proto with protobufjs when imported
 * and @grpc/reflection loads two more (~60-80 ms of CPU on an idle machine, ~90-110 ms at load
 * 15), all before a restarted process can load a snapshot. The methods are registered at once
 * with their paths and kinds (fixed by the protocols); their codecs and handlers are the
 * libraries', built on the first request (a synchronous require, so nothing changes for the
 * caller but that request's time).
 */

const require = createRequire(import.meta.url);

/** A method of a library's service definition, and the handler its implementation registered. */
interface Loaded {
  def: MethodDefinition<unknown, unknown>;
  handler: UntypedHandleCall;
}

/** Collects what `addToServer(server)` of a library would register, by method path. */
function collect(add: (server: Server) => void): Map<string, Loaded> {
  const out = new Map<string, Loaded>();
  const server = {
    addService(service: ServiceDefinition, impl: UntypedServiceImplementation) {
      for (const [name, def] of Object.entries(service)) {
        const handler = impl[name] ?? impl[def.originalName ?? ""];
        if (handler) out.set(def.path, { def, handler: handler.bind(impl) });
      }
    },
  };
  add(server as unknown as Server);
  return out;
}

type Kind = "unary" | "serverStream" | "bidi";

/**
 * Registers `methods` (path → kind) on `server`, each delegating to what `load()` (called once,
 * at the first request or message) collects.
 */
function addLazy(
  server: Server,
  methods: Record<string, Kind>,
  load: () => Map<string, Loaded>,
): void {
  let loaded: Map<string, Loaded> | undefined;
  const method = (path: string): Loaded => {
    const m = (loaded ??= load()).get(path);
    if (!m) throw new Error(`lazy gRPC service: ${path} not registered by its library`);
    return m;
  };
  for (const [path, kind] of Object.entries(methods)) {
    const def: MethodDefinition<unknown, unknown> = {
      path,
      requestStream: kind === "bidi",
      responseStream: kind !== "unary",
      requestSerialize: (v) => method(path).def.requestSerialize(v),
      requestDeserialize: (b) => method(path).def.requestDeserialize(b),
      responseSerialize: (v) => method(path).def.responseSerialize(v),
      responseDeserialize: (b) => method(path).def.responseDeserialize(b),
    };
    // The request is decoded (so loaded) before a unary or server-stream handler runs; a bidi
    // handler runs at the call's start, before any message.
    const handler = (call: unknown, callback?: unknown) =>
      (method(path).handler as (call: unknown, callback?: unknown) => void)(call, callback);
    server.addService({ [path]: def }, { [path]: handler });
  }
}

/** Health statuses by service name, and the library's implementation once loaded. */
export interface LazyHealth {
  setStatus(service: string, status: "SERVING" | "NOT_SERVING"): void;
}

export function addLazyHealth(
  server: Server,
  initial: Record<string, "SERVING" | "NOT_SERVING">,
): LazyHealth {
  const statuses = { ...initial };
  let impl: HealthLib.HealthImplementation | undefined;
  addLazy(
    server,
    {
      "/grpc.health.v1.Health/Check": "unary",
      "/grpc.health.v1.Health/Watch": "serverStream",
      "/grpc.health.v1.Health/List": "unary",
    },
    () => {
      const lib = require("grpc-health-check") as typeof HealthLib;
      impl = new lib.HealthImplementation(statuses);
      return collect((s) => impl!.addToServer(s));
    },
  );
  return {
    setStatus(service, status) {
      statuses[service] = status;
      impl?.setStatus(service, status);
    },
  };
}

/**
 * Server reflection (v1 and v1alpha) of the package `definition(health)` gives: `health` is
 * grpc-health-check's service definition, so reflection lists the health service too.
 */
export function addLazyReflection(
  server: Server,
  definition: (
    health: typeof HealthLib.service,
  ) => ConstructorParameters<typeof ReflectionLib.ReflectionService>[0],
): void {
  addLazy(
    server,
    {
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "bidi",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "bidi",
    },
    () => {
      const { service } = require("grpc-health-check") as typeof HealthLib;
      const lib = require("@grpc/reflection") as typeof ReflectionLib;
      const reflection = new lib.ReflectionService(definition(service));
      return collect((s) => reflection.addToServer(s));
    },
  );
}
