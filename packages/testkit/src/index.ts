export * from "./Target.js"
export * from "./Tokens.js"
export * from "./WsClient.js"
export * from "./FakeHost.js"
