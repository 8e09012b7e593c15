export declare class HeartbeatSocket extends EventTarget {}
