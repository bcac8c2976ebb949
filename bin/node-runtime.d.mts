/** Types of bin/node-runtime.mjs (plain JavaScript: bin/reco.mjs imports it uncompiled). */
export declare const RUNTIME_ENV: Readonly<Record<string, string>>;
export declare const RUNTIME_NODE_OPTIONS: readonly string[];
export declare function runtimeEnv(env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
export declare function runtimeMissing(env?: NodeJS.ProcessEnv, execArgv?: string[]): string[];
export declare function relaunchWithRuntime(): boolean;
