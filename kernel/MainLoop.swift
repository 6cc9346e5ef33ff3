import Arch

/// The kernel's one thread. Interrupt stubs only set bits in `irq_pending`; everything
/// happens here, then the CPU sleeps in `hlt` until the next interrupt or deadline.
///
/// Pausing is done here too: a paused `net0.rx` is simply not drained, so completed
/// buffers pile up in the used ring where the monitor sees them; each step delivers exactly
/// the requested number, oldest first. A paused `net0.tx` gets frames written into the ring
/// but `avail.idx` is not advanced; each step publishes exactly that many to the device.
final class MainLoop {
    let net: VirtioNetDriver
    let stack: NetStack
    let telemetry: Telemetry?
    let rxQueue: MonitoredQueue?
    let txQueue: MonitoredQueue?
    /// Longest sleep when nothing is scheduled: bounds how stale time-driven work can get.
    static let maxSleepNs: UInt64 = 1_000_000_000

    init(net: VirtioNetDriver, stack: NetStack, telemetry: Telemetry?) {
        self.net = net
        self.stack = stack
        self.telemetry = telemetry
        rxQueue = telemetry?.monitored(net.rx)
        txQueue = telemetry?.monitored(net.tx)
    }

    var rxPaused: Bool { rxQueue?.paused ?? false }
    var txPaused: Bool { txQueue?.paused ?? false }

    func run() -> Never {
        while true { iterate() }
    }

    /// One pass of the loop. Kept out of line: the optimizer's loop-invariant code motion
    /// hangs on the inlined body inside the never-ending `while` (Swift 6.3, -Osize).
    @inline(never)
    private func iterate() {
        do {
            // Until the first frame has been handled: when this pass began (the boot log's
            // `first frames` line). One rdtsc per pass, and only until then.
            let passTSC = BootLog.frameHandled ? 0 : rdtsc()
            let pending = irq_take_pending()
            if pending & UInt8(IRQ_VECTOR_TIMER).irqBit != 0 { Clock.timerFired() }
            // Under `inject Q noirq` an interrupt is counted, then ignored (faults.noteInterrupt).
            // Which queue an interrupt counts on is the transport's business (an MMIO device
            // has one line for all: VirtioTransport.interrupts).
            let netInterrupts = net.takeInterrupts(pending)
            if netInterrupts.rx { net.rx.ring.noteInterrupt(); _ = net.rx.faults.noteInterrupt() }
            if netInterrupts.tx { net.tx.ring.noteInterrupt(); _ = net.tx.faults.noteInterrupt() }
            if let console = telemetry?.console {
                let consoleInterrupts = console.takeInterrupts(pending)
                if consoleInterrupts.rx { console.rx.ring.noteInterrupt() }
                if consoleInterrupts.tx { console.tx.ring.noteInterrupt() }
            }
            if netInterrupts.config {
                let wasUp = net.linkUp
                let isUp = net.refreshLinkStatus()
                if isUp != wasUp { log("net0: link \(isUp ? "up" : "down")") }
                telemetry?.linkUp = net.linkUp
            }

            let now = Clock.nowMs
            // Stamp new used elements as they appear, paused or not (pcap timestamps of dumps).
            rxQueue?.noteArrivals(nowNs: Clock.nowNs)
            // The loop polls RX on every pass; under noirq it does not (only `poll` does).
            let received = rxPaused || net.rx.faults.noirq ? 0 : deliver(limit: Int.max)
            stack.poll(nowMs: now)
            transmitPending()
            if received > 0 && !BootLog.frameHandled {
                BootLog.frameHandled = true
                let sent = rdtsc()
                bootLog(BootTimeline.firstFrames(received, takenTSC: passTSC, repliesSentTSC: sent))
            }
            net.repostReceiveBuffers()
            if let telemetry {
                updateDropCounters()
                telemetry.service(nowNs: Clock.nowNs, stepper: { queue, count in self.step(queue, count: count) },
                                  poller: { queue in self.poll(queue) })
            }

            // The TSC measured again over a long span (arch/Calibration.swift), once.
            if let refined = Clock.finishRefinement() { logClock(refined) }

            // Frames just handled need no second pass to look for more: `deliver` took used
            // elements until the ring showed none, after re-arming the RX interrupt for the next
            // one (used_event, or interrupts simply on), so one arriving since has set
            // `irq_pending` (and `cpu_idle` does not halt on a pending one). Saves a pass per echo.
            if irq_pending == 0 {
                // Idle with boot log lines not yet written: one now, then round the loop again
                // (a packet that came meanwhile waits for one line, not for the whole log).
                if BootLog.due(nowNs: Clock.nowNs) && BootLog.writeNext() { return }
                sleepUntilNextDeadline(nowMs: now)
            }
        }
    }

    /// Hands up to `limit` received frames to the stack, remembering the last for dumps.
    /// While stepping (`announce`), every used element taken goes into the telemetry's step
    /// report, so the monitor learns exactly which used elements went up (free-running, that
    /// would double the console traffic: counters suffice).
    private func deliver(limit: Int, announce: Bool = false) -> Int {
        let now = Clock.nowMs
        rxQueue?.noteArrivals(nowNs: Clock.nowNs)
        return net.receive(limit: limit, taken: { head, bytes in
            if announce { telemetry?.noteStepped(WireUsedElement(id: UInt32(head), len: UInt32(truncatingIfNeeded: bytes.count))) }
            // Capture copies what the device wrote, before any injected fault acts on it; a
            // runt (no frame after the header) is not a frame.
            if let rxQueue, bytes.count > VirtioNetDriver.headerSize {
                telemetry?.captureFrame(rxQueue, descriptor: head, bytes: bytes)
            }
        }) { received in
            rxQueue?.remember(descriptor: received.head, address: received.address, bytes: received.buffer)
            stack.receive(frame: received.frame, nowMs: now)
        }
    }

    private func step(_ queue: MonitoredQueue, count: Int) -> Int {
        if queue === rxQueue {
            telemetry?.beginStepReport(firstUsedIdx: net.rx.ring.positions.lastUsed)
            let done = deliver(limit: count, announce: true)
            transmitPending()     // the effect of the step (an echo, a reply) leaves at once
            net.repostReceiveBuffers()
            return done
        }
        if queue === txQueue {
            let done = Int(net.tx.ring.publish(count: UInt16(clamping: count)))
            if done > 0 { net.tx.notifyIfNeeded() }
            return done
        }
        return 0
    }

    /// `poll Q`: what the loop does for the queue when its interrupt arrives, even under
    /// noirq. RX: deliver what is pending (not while paused: steps do that) and repost; TX:
    /// reclaim completed buffers. Then send what the stack has. Returns the used elements taken.
    private func poll(_ queue: MonitoredQueue) -> Int {
        var taken = 0
        if queue === rxQueue {
            taken = rxPaused ? 0 : deliver(limit: Int.max)
        } else if queue === txQueue {
            taken = net.reclaimTransmit()
        }
        stack.poll(nowMs: Clock.nowMs)
        transmitPending()
        net.repostReceiveBuffers()
        return taken
    }

    private func transmitPending() {
        repeat {
            // Under noirq the driver does not look at TX completions unless asked (`poll`).
            if !net.tx.faults.noirq { net.reclaimTransmit() }
            while stack.hasPendingTransmit && net.canTransmit, let frame = stack.nextTransmitFrame() {
                _ = net.enqueueTransmit(frame) { head, address, bytes in
                    txQueue?.stamp(head, nowNs: Clock.nowNs)
                    txQueue?.remember(descriptor: head, address: address, bytes: bytes)
                    if let txQueue { telemetry?.captureFrame(txQueue, descriptor: head, bytes: bytes) }
                }
            }
            // Publishing also covers frames held while TX was paused, so a resume drains them.
            if !txPaused { net.flushTransmit() }
        } while net.armTransmitInterrupt(waiting: stack.hasPendingTransmit)
    }

    /// The network queues' drops as the stack and the driver count them (the console's
    /// queues count their own: see `Telemetry.updateConsoleDrops`).
    private func updateDropCounters() {
        rxQueue?.drops = stack.counters.totalDrops
        txQueue?.drops = net.txRingFullDrops
    }

    private func sleepUntilNextDeadline(nowMs: UInt64) {
        var sleepNs = Self.maxSleepNs
        if let deadline = stack.nextDeadlineMs() {
            sleepNs = deadline > nowMs ? min(sleepNs, (deadline - nowMs) * 1_000_000) : 0
        }
        if let telemetry {
            let nowNs = Clock.nowNs
            let due = telemetry.nextDeadlineNs
            sleepNs = due > nowNs ? min(sleepNs, due - nowNs) : 0
        }
        if BootLog.deferring {
            let nowNs = Clock.nowNs
            sleepNs = BootLog.writeAfterNs > nowNs ? min(sleepNs, BootLog.writeAfterNs - nowNs) : 0
        }
        if let due = Clock.refinement?.dueTSC {
            let now = rdtsc()
            sleepNs = due > now ? min(sleepNs, Clock.nanoseconds(ticks: due - now) + 1_000) : 0
        }
        if sleepNs == 0 { return }
        let idleStart = rdtsc()
        // Not while RX is paused or its interrupts are being ignored (`inject noirq`): the ring
        // is not drained then.
        let pollNs = rxPaused || net.rx.faults.noirq ? 0 : min(Clock.pollWindow.windowNs, sleepNs)
        if pollForWork(ns: pollNs) {
            Clock.pollWindow.hit()
            return
        }
        // About to halt: RX interrupts back on (polling turns them off), and a frame that came
        // since they went off is taken now, not at the next interrupt (the classic race).
        if !net.rx.ring.interruptsEnabled && net.rx.ring.enableInterrupts() && !rxPaused && !net.rx.faults.noirq { return }
        // The poll used up the time to the next deadline: go round for it.
        if pollNs == sleepNs { return }
        Clock.wake(afterNs: sleepNs - pollNs)
        Clock.idle()
        // Only a frame is the work polling looks for: a console completion or the timer says
        // nothing about how soon the next frame comes.
        let byWork = net.mayHaveReceiveInterrupt(irq_pending)
        Clock.pollWindow.halted(idleNs: Clock.nanoseconds(ticks: rdtsc() &- idleStart), byWork: byWork)
    }

    /// Polls for up to `ns` for work — a used RX buffer, any interrupt — with RX interrupts
    /// off, NAPI-style: under QEMU a halted vCPU is woken through the host and takes the
    /// interrupt (and its EOI) under QEMU's lock, while a polling one sees the device's store
    /// to the used ring at once. The window adapts (Virtio's `PollWindow`): it opens while
    /// frames come within its reach and closes when they stop, so an idle kernel halts at
    /// once. Returns whether work was found.
    private func pollForWork(ns: UInt64) -> Bool {
        guard ns > 0 else { return false }
        net.rx.ring.disableInterrupts()
        let start = rdtsc()
        let end = start &+ Clock.ticks(ns: ns)
        var found = false
        repeat {
            if irq_pending != 0 || net.rx.ring.hasPendingUsed { found = true; break }
        } while rdtsc() < end
        Clock.pollTicks &+= rdtsc() &- start
        return found
    }
}
