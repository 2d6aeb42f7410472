using ReaperProxy.Framing;
using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Fuzz;

/// <summary>
/// The committed seed corpus (tools/fuzz/corpus): every frame shape the framing and relay tests use —
/// each opcode, each length encoding, masked and unmasked, fragmented messages with control frames between
/// the fragments, Close with and without a code, the peers' answers to the proxy's pings — cut at
/// interesting points, and the invalid shapes the proxy must refuse. <see cref="FuzzCorpusTests"/> checks
/// the files are exactly these (REAPER_WRITE_FUZZ_SEEDS=1 rewrites them).
/// </summary>
internal static class SeedCorpus
{
    private const uint ClientMask = 0x6D3F1A22;

    public static IEnumerable<(string Name, byte[] Bytes)> Scanner()
    {
        foreach (var (name, stream) in Streams(ClientMask).Concat(Streams(null)).Concat(Invalid()))
        {
            // Whole; one byte per read; reads of 2, 3 and 7 bytes with boundary stops asked for now and then.
            yield return ($"{name}-whole", [0, 0, .. stream]);
            yield return ($"{name}-bytewise", [1, 0xFF, 0, .. stream]);
            yield return ($"{name}-cut-2-3-7", [3, 0x5A, 1, 2, 6, .. stream]);
        }
    }

    public static IEnumerable<(string Name, byte[] Bytes)> Relay()
    {
        foreach (var (name, stream) in Streams(ClientMask))
        {
            yield return ($"client-{name}", new FuzzProgram().Client(stream).ToBytes());
            yield return ($"client-{name}-cut", new FuzzProgram(FuzzProgram.Config(readBuffer: 1)).ClientSplit(stream, 1, 3, 9).ToBytes());
        }

        foreach (var (name, stream) in Streams(null))
        {
            yield return ($"backend-{name}", new FuzzProgram().Backend(stream).ToBytes());
            yield return ($"backend-{name}-cut", new FuzzProgram().BackendSplit(stream, 1, 3, 9).ToBytes());
        }

        foreach (var (name, stream) in Invalid())
        {
            var masked = MaskAll(stream);
            yield return ($"client-{name}", new FuzzProgram().Client(WireFrame.Text("ok", mask: ClientMask).ToBytes()).Client(masked).ToBytes());
            yield return ($"backend-{name}", new FuzzProgram().Backend(WireFrame.Text("ok").ToBytes()).Backend(stream).ToBytes());
            yield return ($"observe-backend-{name}", new FuzzProgram(FuzzProgram.Config("Observe")).Backend(stream).Client(WireFrame.Text("after", mask: ClientMask).ToBytes()).ToBytes());
        }

        var hello = WireFrame.Text("hello", mask: ClientMask).ToBytes();
        var reply = WireFrame.Text("world").ToBytes();
        var fragmented = WireFrame.Concat([WireFrame.Text("frag", fin: false), WireFrame.Continuation(40, fin: true)]);

        // Pings, their answers (whole, split inside the header, inside the payload), and pong timeouts.
        yield return ("ping-both-answered", new FuzzProgram().Tick(10_000).ClientPong().BackendPong().Client(hello).Backend(reply).ToBytes());
        yield return ("ping-client-pong-split-header", new FuzzProgram(FuzzProgram.Config(legs: "Client")).Tick(10_000).ClientPong(1).Tick(1000).Client(hello).ToBytes());
        yield return ("ping-client-pong-split-payload", new FuzzProgram(FuzzProgram.Config(legs: "Client")).Tick(10_000).ClientPong(12).Backend(reply).Client(hello).ToBytes());
        yield return ("ping-backend-pong-split", new FuzzProgram(FuzzProgram.Config(legs: "Backend")).Tick(10_000).BackendPong(3).Client(hello).Backend(reply).ToBytes());
        yield return ("ping-pong-twice", new FuzzProgram().Tick(10_000).ClientPong().ClientPong().BackendPong().BackendPong().ToBytes());
        yield return ("ping-pong-late", new FuzzProgram().Tick(10_000).Tick(4_000).ClientPong().BackendPong().Ticks(10_000, 2).ClientPong().ToBytes());
        yield return ("ping-timeout-client", new FuzzProgram().Tick(10_000).BackendPong().Ticks(2_500, 3).Backend(reply).ToBytes());
        yield return ("ping-timeout-backend", new FuzzProgram().Tick(10_000).ClientPong().Ticks(2_500, 3).Client(hello).ToBytes());
        yield return ("ping-observe", new FuzzProgram(FuzzProgram.Config("Observe")).Tick(10_000).Ticks(2_500, 3).ClientPong().BackendPong().ToBytes());
        yield return ("ping-off", new FuzzProgram(FuzzProgram.Config("Off")).Tick(10_000).Client(hello).Backend(reply).ToBytes());
        yield return ("ping-inside-fragmented", new FuzzProgram().BackendSplit(fragmented, 8).Tick(10_000).Backend(reply).ClientPong().ToBytes());
        yield return ("ping-mid-frame-backend", new FuzzProgram(FuzzProgram.Config(legs: "Client")).BackendSplit(WireFrame.Binary(300).ToBytes(), 100).Tick(10_000).Backend(reply).ClientPong().ToBytes());
        yield return ("ping-mid-frame-client", new FuzzProgram(FuzzProgram.Config(legs: "Backend")).ClientSplit(WireFrame.Binary(300, mask: ClientMask).ToBytes(), 100).Tick(10_000).Client(hello).BackendPong().ToBytes());
        yield return ("ping-small-read-buffer", new FuzzProgram(FuzzProgram.Config(readBuffer: 2)).Tick(10_000).BackendPong().Client(hello).ToBytes());
        yield return ("idle-timeout", new FuzzProgram(0, 1).Ticks(25_600, 3).ClientPong().BackendPong().ToBytes());
        yield return ("slow-client-reader", new FuzzProgram().ClientStopsReading().Backend(reply).Tick(10_000).Ticks(5_000, 4).ClientStopsReading().ToBytes());
        yield return ("slow-client-mid-frame", new FuzzProgram().ClientStopsReading().BackendSplit(WireFrame.Binary(200).ToBytes(), 50).Ticks(10_000, 3).ClientStopsReading().Backend(reply).ToBytes());

        // Closing handshakes: answered, unanswered (the proxy answers), empty Close, bytes after Close.
        yield return ("close-client-answered", new FuzzProgram().Client(hello).ClientClose(1000).BackendClose(1000).ToBytes());
        yield return ("close-backend-answered", new FuzzProgram().Backend(reply).BackendClose(1001).ClientClose(1001).ToBytes());
        yield return ("close-client-unanswered", new FuzzProgram().ClientClose(4000).Ticks(1_000, 5).Backend(reply).ToBytes());
        yield return ("close-backend-unanswered", new FuzzProgram().BackendClose(1011).Ticks(1_000, 5).Client(hello).ToBytes());
        yield return ("close-empty", new FuzzProgram().ClientClose(0).BackendClose(0).ToBytes());
        yield return ("close-unsendable-code", new FuzzProgram().ClientClose(1005).Ticks(1_000, 5).ToBytes());
        yield return ("close-then-bytes", new FuzzProgram().Client([.. WireFrame.Close(1000, "bye", ClientMask).ToBytes(), .. hello]).Backend([.. WireFrame.Close(1000).ToBytes(), .. reply]).ToBytes());
        yield return ("close-mid-fragment", new FuzzProgram().BackendSplit(fragmented, 8).BackendClose(1000).ToBytes());
        yield return ("close-observe", new FuzzProgram(FuzzProgram.Config("Observe")).ClientClose(1000).Ticks(1_000, 5).ToBytes());
        yield return ("client-eof", new FuzzProgram().Client(hello).ClientEnd().Backend(reply).Ticks(1_000, 4).ToBytes());
        yield return ("client-eof-mid-frame", new FuzzProgram().ClientSplit(WireFrame.Binary(100, mask: ClientMask).ToBytes(), 30).ClientEnd().Ticks(1_000, 4).ToBytes());
        yield return ("backend-eof", new FuzzProgram().Backend(reply).BackendEnd().Client(hello).ToBytes());
        yield return ("shutdown", new FuzzProgram().Client(hello).Shutdown().BackendClose(1001).ClientClose(1001).ToBytes());
        yield return ("shutdown-unanswered", new FuzzProgram().Shutdown().Ticks(1_000, 5).ToBytes());
        yield return ("shutdown-mid-frame", new FuzzProgram().BackendSplit(WireFrame.Binary(200).ToBytes(), 50).Shutdown().Ticks(1_000, 5).ToBytes());
    }

    // Valid streams, masked (client) or not (backend).
    private static IEnumerable<(string Name, byte[] Stream)> Streams(uint? mask)
    {
        var m = mask is null ? "unmasked" : "masked";
        yield return ($"text-{m}", WireFrame.Text("hello", mask: mask).ToBytes());
        yield return ($"binary-empty-{m}", WireFrame.Binary(0, mask: mask).ToBytes());
        yield return ($"binary-125-{m}", WireFrame.Binary(125, mask: mask).ToBytes());
        yield return ($"binary-16bit-{m}", WireFrame.Binary(126, mask: mask).ToBytes());
        yield return ($"binary-64bit-{m}", NonMinimal64(mask));
        yield return ($"rsv1-{m}", WireFrame.Binary(3, mask: mask, rsv: 4).ToBytes());
        yield return ($"ping-{m}", WireFrame.Ping([1, 2, 3], mask).ToBytes());
        yield return ($"ping-16-{m}", WireFrame.Ping(new byte[16], mask).ToBytes());
        yield return ($"pong-125-{m}", WireFrame.Pong(new byte[125], mask).ToBytes());
        yield return ($"pong-16-{m}", WireFrame.Pong(new byte[16], mask).ToBytes());
        yield return ($"close-code-{m}", WireFrame.Close(1000, "bye", mask).ToBytes());
        yield return ($"close-empty-{m}", new WireFrame(true, 0, WebSocketOpcode.Close, [], mask).ToBytes());
        yield return ($"fragmented-{m}", WireFrame.Concat(
        [
            WireFrame.Binary(3, fin: false, mask: mask, rsv: 4),
            WireFrame.Ping([], mask),
            WireFrame.Continuation(200, fin: false, mask: mask),
            WireFrame.Pong(new byte[5], mask),
            WireFrame.Continuation(0, fin: false, mask: mask),
            WireFrame.Continuation(7, fin: true, mask: mask),
            WireFrame.Text("next", mask: mask),
        ]));
        yield return ($"mixed-{m}", WireFrame.Concat(
        [
            WireFrame.Text("hello", mask: mask),
            WireFrame.Binary(126, mask: mask),
            WireFrame.Ping(new byte[16], mask),
            WireFrame.Binary(300, mask: mask),
            WireFrame.Close(1000, "bye", mask),
        ]));
    }

    // The shapes a proxy that keeps frame boundaries must refuse (RFC 6455 §5.2, §5.4, §5.5).
    private static IEnumerable<(string Name, byte[] Stream)> Invalid()
    {
        yield return ("invalid-reserved-opcode", [0x83, 0x00]);
        yield return ("invalid-reserved-control-opcode", [0x8B, 0x00]);
        yield return ("invalid-fragmented-ping", [0x09, 0x00]);
        yield return ("invalid-control-126", [0x89, 0x7E, 0x00, 0x7E]);
        yield return ("invalid-length-top-bit", [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1]);
        yield return ("invalid-continuation-first", WireFrame.Continuation(3, fin: true).ToBytes());
        yield return ("invalid-message-inside-message", WireFrame.Concat([WireFrame.Text("a", fin: false), WireFrame.Text("b")]));
        yield return ("invalid-after-valid", WireFrame.Concat([WireFrame.Binary(10), WireFrame.Ping([7]), new WireFrame(true, 0, 0x5, [1, 2], null)]));
    }

    // A 5-byte binary frame with its length in the 64-bit encoding (non-minimal, accepted: §5.2's
    // "minimal number of bytes" is the endpoints' to judge).
    private static byte[] NonMinimal64(uint? mask)
    {
        var frame = WireFrame.Binary(5, mask: mask).ToBytes();
        var headerLength = mask is null ? 2 : 6;
        byte[] header = [frame[0], (byte)((frame[1] & 0x80) | 127), 0, 0, 0, 0, 0, 0, 0, 5];
        return [.. header, .. frame.AsSpan(2, headerLength - 2), .. frame.AsSpan(headerLength)];
    }

    // Sets the MASK bit with a zero key on each frame of a stream the seeds call invalid: the client's
    // frames are masked (the bytes after the bad one are never looked at).
    private static byte[] MaskAll(byte[] stream) => stream.Length < 2 || (stream[1] & 0x7F) > 125 ? stream
        : [stream[0], (byte)(stream[1] | 0x80), 0, 0, 0, 0, .. stream.AsSpan(2)];
}
