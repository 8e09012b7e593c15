export class HeartbeatSocket extends EventTarget {}
