// ES-module entry of the SDK: the code lives in portal-sdk.js; this file only exports it.
import "./portal-sdk.js";

export const PortalSDK = globalThis.PortalSDK;
export default PortalSDK;
