// The Prometheus text exposition format (version 0.0.4): for each metric family a
// `# HELP` and a `# TYPE` line, then one sample per line, `name{label="value"} number`.
// Counters end in `_total`. Also the stack's own counters, written once here so the
// kernel's /metrics and the host tests see the same names.

#if canImport(NetStack)
import NetStack  // SwiftPM; the kernel compiles HTTP and NetStack into one module (kernel/Makefile)
#endif

public struct HTTPMetricsWriter {
    public var text = HTTPText()

    public init() {}

    /// `# HELP` and `# TYPE` for a family; `type` is "counter" or "gauge".
    public mutating func family(_ name: StaticString, _ type: StaticString, _ help: StaticString) {
        text.append("# HELP ")
        text.append(name)
        text.append(" ")
        text.append(help)
        text.append("\n# TYPE ")
        text.append(name)
        text.append(" ")
        text.append(type)
        text.append("\n")
    }

    /// One sample without labels.
    public mutating func sample(_ name: StaticString, _ value: UInt64) {
        text.append(name)
        text.append(" ")
        text.append(value)
        text.append("\n")
    }

    /// One sample with one label.
    public mutating func sample(_ name: StaticString, label: StaticString, _ labelValue: String, _ value: UInt64) {
        text.append(name)
        text.append("{")
        text.append(label)
        text.append("=\"")
        text.appendLabelEscaped(labelValue)
        text.append("\"} ")
        text.append(value)
        text.append("\n")
    }

    /// A family with one sample.
    public mutating func metric(_ name: StaticString, _ type: StaticString, _ help: StaticString, _ value: UInt64) {
        family(name, type, help)
        sample(name, value)
    }

    /// The network stack's counters (link, IPv4, ICMP, UDP, TCP).
    public mutating func netCounters(_ c: NetCounters) {
        metric("ringside_net_rx_frames_total", "counter", "Ethernet frames received.", c.rxFrames)
        metric("ringside_net_tx_frames_total", "counter", "Ethernet frames sent.", c.txFrames)
        metric("ringside_net_rx_bytes_total", "counter", "Bytes received.", c.rxBytes)
        metric("ringside_net_tx_bytes_total", "counter", "Bytes sent.", c.txBytes)
        metric("ringside_net_drops_total", "counter", "Packets the stack threw away.", c.totalDrops)
        metric("ringside_ipv4_packets_in_total", "counter", "IPv4 packets received.", c.ipv4In)
        metric("ringside_icmp_echo_requests_total", "counter", "ICMP echo requests received.", c.icmpEchoRequests)
        metric("ringside_udp_datagrams_in_total", "counter", "UDP datagrams received.", c.udpIn)
        metric("ringside_udp_datagrams_out_total", "counter", "UDP datagrams sent.", c.udpOut)
        metric("ringside_tcp_segments_in_total", "counter", "TCP segments received.", c.tcpIn)
        metric("ringside_tcp_segments_out_total", "counter", "TCP segments sent.", c.tcpSegmentsOut)
        metric("ringside_tcp_retransmits_total", "counter", "TCP segments sent again.", c.tcpRetransmits)
        metric("ringside_tcp_timeouts_total", "counter", "TCP retransmission timer expiries.", c.tcpTimeouts)
        metric("ringside_tcp_connections_accepted_total", "counter", "TCP connections accepted.", c.tcpConnectionsAccepted)
        metric("ringside_tcp_connections_timed_out_total", "counter", "TCP connections given up on.", c.tcpConnectionsTimedOut)
        metric("ringside_tcp_resets_in_total", "counter", "TCP resets received.", c.tcpResetsIn)
        metric("ringside_tcp_resets_out_total", "counter", "TCP resets sent.", c.tcpResetsOut)
        metric("ringside_tcp_active_connections", "gauge", "TCP connections open (not TIME-WAIT).", c.tcpActiveConnections)
        metric("ringside_tcp_time_wait_connections", "gauge", "TCP connections in TIME-WAIT.", c.tcpTimeWaitConnections)
        family("ringside_tcp_drops_total", "counter", "TCP segments dropped, by reason.")
        sample("ringside_tcp_drops_total", label: "reason", "bad_checksum", c.tcpDropBadChecksum)
        sample("ringside_tcp_drops_total", label: "reason", "malformed", c.tcpDropMalformed)
        sample("ringside_tcp_drops_total", label: "reason", "backlog_full", c.tcpDropBacklogFull)
        sample("ringside_tcp_drops_total", label: "reason", "out_of_order_overflow", c.tcpDropOutOfOrderOverflow)
        sample("ringside_tcp_drops_total", label: "reason", "unacceptable", c.tcpDropUnacceptable)
        metric("ringside_tcp_evictions_total", "counter", "TCP connections reset to make room (half-open, closing or idle).", c.tcpEvictions)
        family("ringside_tcp_refused_total", "counter", "TCP connections refused with a reset, by reason.")
        sample("ringside_tcp_refused_total", label: "reason", "table_full", c.tcpRefusedFull)
        sample("ringside_tcp_refused_total", label: "reason", "per_source", c.tcpRefusedPerSource)
        sample("ringside_tcp_refused_total", label: "reason", "memory", c.tcpRefusedMemory)
    }

    /// The HTTP server's counters.
    public mutating func httpCounters(_ server: HTTPServer) {
        metric("ringside_http_requests_total", "counter", "HTTP requests parsed.", server.requestsTotal)
        family("ringside_http_responses_total", "counter", "HTTP responses, by status class.")
        sample("ringside_http_responses_total", label: "class", "2xx", server.responses2xx)
        sample("ringside_http_responses_total", label: "class", "4xx", server.responses4xx)
        sample("ringside_http_responses_total", label: "class", "5xx", server.responses5xx)
        metric("ringside_http_open_connections", "gauge", "HTTP connections open.", server.openConnections)
        metric("ringside_http_request_timeouts_total", "counter", "HTTP connections reset: headers not complete in time.", server.requestTimeouts)
        family("ringside_http_refused_total", "counter", "HTTP connections or responses refused for lack of memory.")
        sample("ringside_http_refused_total", label: "what", "connection", server.refusedForMemory)
        sample("ringside_http_refused_total", label: "what", "response", server.responsesRefusedForMemory)
    }

    /// The network stack's memory budget (NetMemory) and the connection limit it backs.
    public mutating func netMemory(_ memory: NetMemory, maxConnections: Int) {
        metric("ringside_net_memory_limit_bytes", "gauge", "Bytes the network stack may reserve.", UInt64(clamping: memory.limitBytes))
        metric("ringside_net_memory_reserved_bytes", "gauge", "Bytes the network stack has reserved.", UInt64(memory.reservedBytes))
        metric("ringside_net_memory_peak_reserved_bytes", "gauge", "The most the network stack has had reserved.", UInt64(memory.peakReservedBytes))
        metric("ringside_net_memory_refusals_total", "counter", "Reservations refused (connections or responses).", memory.refusals)
        metric("ringside_net_memory_allocation_failures_total", "counter", "Buffer allocations the heap could not serve.", memory.allocationFailures)
        metric("ringside_tcp_max_connections", "gauge", "Connections the table holds at most.", UInt64(maxConnections))
    }
}
