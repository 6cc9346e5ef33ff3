/// A device a driver runs through one receive and one transmit queue (virtio-net; the
/// console's port 0), brought up to where the driver reads its configuration and then calls
/// `transport.start(receiveQueue:)`: the transport opened, features negotiated (3.1.1 steps
/// 1-6), the configuration-change vector routed, both queues set up (step 7).
struct QueuePairDevice {
    let transport: VirtioTransport
    let features: VirtioFeatures
    let rx: DeviceQueue
    let tx: DeviceQueue

    /// What a device refusing the configuration-change vector means to its driver.
    enum ConfigInterrupt {
        /// The driver needs it (net: link changes): the device fails.
        case required
        /// The driver goes on without it; the log says so, naming the device.
        case optional(deviceName: String)
    }

    /// nil when any step fails (the transport and `negotiate` log why; the device's status is
    /// FAILED where the spec asks for it).
    init?(location: VirtioDeviceLocation, deviceConfigBytes: UInt32, vectors: DeviceVectors, apicID: UInt32,
          wanted: VirtioFeatures, required: VirtioFeatures, configInterrupt: ConfigInterrupt,
          receive: QueueRequest, transmit: QueueRequest) {
        guard let transport = VirtioTransport.open(location, deviceConfigBytes: deviceConfigBytes, vectors: vectors, apicID: apicID),
              let features = transport.negotiate(wanted: wanted, required: required)
        else { return nil }
        if !transport.routeConfigInterrupt(vector: vectors.config) {
            switch configInterrupt {
            case .required:
                transport.fail()
                return nil
            case .optional(let name):
                log(name + ": device refused a configuration-change vector; continuing without it")
            }
        }
        guard let (rx, tx) = transport.setUpQueuePair(receive: receive, transmit: transmit, features: features) else { return nil }
        self.transport = transport
        self.features = features
        self.rx = rx
        self.tx = tx
    }
}
