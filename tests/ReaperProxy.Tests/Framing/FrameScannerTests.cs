using ReaperProxy.Framing;
using Xunit.Abstractions;

namespace ReaperProxy.Tests.Framing;

public class FrameScannerTests(ITestOutputHelper output)
{
    private const uint Mask = 0xA1B2C3D4;

    /// <summary>
    /// A stream with a fragmented message with control frames between its fragments, an RSV1
    /// (compressed) message, empty and 125-byte control frames, and 7- and 16-bit lengths; with
    /// <paramref name="large"/> also the 64-bit encoding (65536), and with <paramref name="edges"/> the
    /// other large edges (65535, the 16-bit maximum, and 65537) in a second fragmented message.
    /// </summary>
    private static List<WireFrame> MixedStream(bool masked, bool large, bool edges = false)
    {
        uint? m = masked ? Mask : null;
        var frames = new List<WireFrame>
        {
            WireFrame.Text("hello", mask: m),
            WireFrame.Binary(0, mask: m),
            WireFrame.Binary(125, mask: m),
            WireFrame.Binary(126, mask: m),
            WireFrame.Binary(3, fin: false, mask: m, rsv: 4),
            WireFrame.Ping([], m),
            WireFrame.Continuation(200, fin: false, mask: m),
            WireFrame.Pong(new byte[125], m),
            WireFrame.Close(1000, "bye", m),
            WireFrame.Continuation(0, fin: false, mask: m),
            WireFrame.Continuation(7, fin: true, mask: m),
            WireFrame.Binary(300, mask: m, rsv: 4),
            WireFrame.Ping(new byte[16], m),
        };
        if (large)
        {
            frames.Insert(4, WireFrame.Binary(65536, mask: m));
        }

        if (edges)
        {
            frames.Add(WireFrame.Binary(65535, fin: false, mask: m));
            frames.Add(WireFrame.Ping([1, 2, 3], m));
            frames.Add(WireFrame.Continuation(65537, fin: true, mask: m));
        }

        return frames;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_stream_split_at_any_one_point_comes_back_byte_for_byte(bool masked)
    {
        var frames = MixedStream(masked, large: true);
        var bytes = WireFrame.Concat(frames);
        var expectedControls = frames.Count(f => f.IsControl);

        for (var split = 0; split <= bytes.Length; split++)
        {
            var caller = ScannerCaller.Verifying(bytes);
            caller.Feed(bytes.AsSpan(0, split));
            caller.Feed(bytes.AsSpan(split));

            AssertSameBytes(bytes, caller, $"split at {split}");
            Assert.Equal(expectedControls, caller.Controls.Count);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_unit_split_across_three_chunks_comes_back_byte_for_byte(bool masked)
    {
        // Every pair of split points no further apart than the largest held unit (a whole control
        // frame): that is how a header or a control frame ends up spread over three reads.
        var frames = MixedStream(masked, large: false);
        var bytes = WireFrame.Concat(frames);

        for (var first = 0; first <= bytes.Length; first++)
        {
            for (var second = first; second <= Math.Min(bytes.Length, first + FrameHeader.MaxControlFrame); second++)
            {
                var caller = ScannerCaller.Verifying(bytes);
                caller.Feed(bytes.AsSpan(0, first));
                caller.Feed(bytes.AsSpan(first, second - first));
                caller.Feed(bytes.AsSpan(second));

                AssertSameBytes(bytes, caller, $"split at {first} and {second}");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_stream_fed_one_byte_at_a_time_comes_back_byte_for_byte(bool masked)
    {
        var frames = MixedStream(masked, large: true, edges: true);
        var bytes = WireFrame.Concat(frames);
        var caller = ScannerCaller.Verifying(bytes);

        for (var i = 0; i < bytes.Length; i++)
        {
            caller.Feed(bytes.AsSpan(i, 1));
        }

        AssertSameBytes(bytes, caller, "byte by byte");
        Assert.Equal(frames.Where(f => f.IsControl).Select(f => f.Opcode), caller.Controls.Select(c => c.Opcode));
    }

    [Fact]
    public void Random_streams_chopped_at_random_points_come_back_frame_for_frame()
    {
        Seeded.Run(400, output, (random, _) =>
        {
            var frames = RandomFrames.Stream(random, masked: random.Next(2) == 0);
            var bytes = WireFrame.Concat(frames);
            var caller = new ScannerCaller();
            var offset = 0;
            foreach (var chunk in RandomFrames.Chunks(random, bytes.Length))
            {
                caller.Feed(bytes.AsSpan(offset, chunk));
                offset += chunk;
            }

            AssertSameBytes(bytes, caller, "random chunking");
            Assert.True(caller.Output.SequenceEqual(bytes), "random chunking: output differs from input");
            var back = ReferenceFrameReader.ReadAll(caller.Output);
            Assert.Equal(frames.Select(f => f.ToBytes()), back.Select(f => f.ToBytes()));
        });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_continuation_without_an_open_message_is_an_error(bool masked)
    {
        uint? m = masked ? Mask : null;
        var before = WireFrame.Concat([WireFrame.Text("whole", mask: m), WireFrame.Ping([9], m)]);
        var bytes = WireFrame.Concat([WireFrame.Text("whole", mask: m), WireFrame.Ping([9], m), WireFrame.Continuation(4, fin: true, mask: m)]);

        var caller = new ScannerCaller();
        caller.Feed(bytes);

        Assert.Equal(FrameError.UnexpectedContinuation, caller.Error);
        Assert.Equal(before.Length, caller.ErrorAt);
        Assert.Equal(before, caller.Output.ToArray());
    }

    [Theory]
    [InlineData(WebSocketOpcode.Text)]
    [InlineData(WebSocketOpcode.Binary)]
    public void A_new_message_inside_an_open_one_is_an_error(byte opcode)
    {
        var before = WireFrame.Concat([WireFrame.Binary(10, fin: false), WireFrame.Pong([1])]);
        var bytes = WireFrame.Concat([WireFrame.Binary(10, fin: false), WireFrame.Pong([1]), new WireFrame(true, 0, opcode, [1, 2])]);

        var caller = new ScannerCaller();
        caller.Feed(bytes);

        Assert.Equal(FrameError.ExpectedContinuation, caller.Error);
        Assert.Equal(before, caller.Output.ToArray());
    }

    [Fact]
    public void A_message_error_is_found_whatever_the_chunking()
    {
        var bytes = WireFrame.Concat([WireFrame.Binary(300), WireFrame.Continuation(5, fin: true)]);

        for (var split = 0; split <= bytes.Length; split++)
        {
            var caller = new ScannerCaller();
            caller.Feed(bytes.AsSpan(0, split));
            caller.Feed(bytes.AsSpan(split));

            Assert.Equal(FrameError.UnexpectedContinuation, caller.Error);
            Assert.Equal(304, caller.ErrorAt);
        }
    }

    [Fact]
    public void A_header_error_stops_the_scan_before_the_bad_frame()
    {
        byte[] reserved = [0x83, 0x00];
        var good = WireFrame.Binary(70_000).ToBytes();
        var caller = new ScannerCaller();

        caller.Feed([.. good, .. reserved]);

        Assert.Equal(FrameError.ReservedOpcode, caller.Error);
        Assert.Equal(good, caller.Output.ToArray());
    }

    [Fact]
    public void The_scanner_is_at_a_boundary_only_between_frames()
    {
        var frame = WireFrame.Binary(1000).ToBytes();
        var scanner = new FrameScanner();
        Assert.True(scanner.AtBoundary);

        var stop = scanner.Scan(frame.AsSpan(0, 500), 0, stopAtBoundary: false, out var run, out _, out _);

        Assert.Equal(ScanStop.End, stop);
        Assert.Equal(500, run);
        Assert.False(scanner.AtBoundary);
        Assert.Equal(1000 - 496, scanner.PayloadRemaining);

        stop = scanner.Scan(frame.AsSpan(500), 0, stopAtBoundary: true, out run, out _, out _);

        Assert.Equal(ScanStop.Boundary, stop);
        Assert.Equal(frame.Length - 500, run);
        Assert.True(scanner.AtBoundary);
    }

    [Fact]
    public void Control_frames_are_not_data()
    {
        var scanner = new FrameScanner();
        var ping = WireFrame.Ping([1, 2, 3]).ToBytes();

        var stop = scanner.Scan(ping, 0, stopAtBoundary: false, out var run, out _, out _);

        // The run (what the relay counts as data) is empty: the ping is handed over on its own.
        Assert.Equal(ScanStop.Control, stop);
        Assert.Equal(0, run);
    }

    [Fact]
    public void Asked_to_stop_at_a_boundary_it_stops_before_the_next_frame_even_with_more_data()
    {
        var bytes = WireFrame.Concat([WireFrame.Binary(10), WireFrame.Binary(20)]);
        var scanner = new FrameScanner();

        var stop = scanner.Scan(bytes, 0, stopAtBoundary: true, out var run, out _, out _);
        Assert.Equal((ScanStop.Boundary, 0), (stop, run));

        stop = scanner.Scan(bytes, 0, stopAtBoundary: false, out run, out _, out _);
        Assert.Equal((ScanStop.End, bytes.Length), (stop, run));
    }

    [Fact]
    public void A_control_frame_is_reported_where_it_starts_and_not_consumed()
    {
        var data = WireFrame.Binary(5).ToBytes();
        var ping = WireFrame.Ping([7, 7], Mask).ToBytes();
        byte[] bytes = [.. data, .. ping];
        var scanner = new FrameScanner();

        var stop = scanner.Scan(bytes, 0, stopAtBoundary: false, out var run, out var control, out _);

        Assert.Equal(ScanStop.Control, stop);
        Assert.Equal(data.Length, run);
        Assert.Equal(WebSocketOpcode.Ping, control.Opcode);
        Assert.Equal(ping.Length, control.FrameLength);
    }

    [Fact]
    public void A_control_frame_cut_short_is_held_whole()
    {
        var ping = WireFrame.Ping(new byte[100]).ToBytes();
        var scanner = new FrameScanner();

        var stop = scanner.Scan(ping.AsSpan(0, 50), 0, stopAtBoundary: false, out var run, out _, out _);

        Assert.Equal(ScanStop.Held, stop);
        Assert.Equal(0, run);
        Assert.True(scanner.AtBoundary);
    }

    private static void AssertSameBytes(byte[] expected, ScannerCaller caller, string context)
    {
        Assert.True(caller.Error is null, $"{context}: unexpected error {caller.Error} after {caller.ErrorAt} bytes");
        Assert.True(caller.HeldCount == 0, $"{context}: {caller.HeldCount} bytes still held at the end");
        Assert.True(caller.MismatchAt is null, $"{context}: output differs from input at byte {caller.MismatchAt}");
        Assert.True(caller.Forwarded == expected.Length, $"{context}: {caller.Forwarded} of {expected.Length} bytes forwarded");
    }

    [Theory]
    [InlineData(WebSocketOpcode.Text)]
    [InlineData(WebSocketOpcode.Ping)]
    [InlineData(WebSocketOpcode.Close)]
    public void An_unmasked_frame_from_the_client_is_an_error_before_any_of_it_is_forwarded(byte opcode)
    {
        var before = WireFrame.Text("masked", mask: Mask).ToBytes();
        var bad = new WireFrame(true, 0, opcode, [], maskKey: null).ToBytes();
        var caller = new ScannerCaller(masking: MaskRule.Masked);

        caller.Feed([.. before, .. bad, .. before]);

        Assert.Equal(FrameError.UnmaskedClientFrame, caller.Error);
        Assert.Equal(before.Length, caller.ErrorAt);
        Assert.Equal(before, caller.Output.ToArray());
    }

    [Theory]
    [InlineData(WebSocketOpcode.Binary)]
    [InlineData(WebSocketOpcode.Pong)]
    public void A_masked_frame_from_the_backend_is_an_error_before_any_of_it_is_forwarded(byte opcode)
    {
        var before = WireFrame.Text("plain").ToBytes();
        var bad = new WireFrame(true, 0, opcode, [1, 2, 3], maskKey: Mask).ToBytes();
        var caller = new ScannerCaller(masking: MaskRule.Unmasked);

        caller.Feed([.. before, .. bad]);

        Assert.Equal(FrameError.MaskedServerFrame, caller.Error);
        Assert.Equal(before, caller.Output.ToArray());
    }

    [Theory]
    [InlineData((int)MaskRule.Masked, true)]
    [InlineData((int)MaskRule.Unmasked, false)]
    [InlineData((int)MaskRule.Any, true)]
    [InlineData((int)MaskRule.Any, false)]
    public void Frames_masked_as_their_direction_requires_pass_byte_for_byte(int rule, bool masked)
    {
        var bytes = WireFrame.Concat(MixedStream(masked, large: true));
        var caller = new ScannerCaller(masking: (MaskRule)rule);

        caller.Feed(bytes);

        Assert.Null(caller.Error);
        Assert.Equal(bytes, caller.Output.ToArray());
    }

    public static TheoryData<byte[], int> BadClosePayloads() => new()
    {
        { [0x03], (int)FrameError.CloseOneBytePayload },
        { [0x00, 0x00], (int)FrameError.InvalidCloseCode },
        { [0x03, 0xE7], (int)FrameError.InvalidCloseCode }, // 999
        { [0x03, 0xEC], (int)FrameError.InvalidCloseCode }, // 1004
        { [0x03, 0xED], (int)FrameError.InvalidCloseCode }, // 1005
        { [0x03, 0xEE], (int)FrameError.InvalidCloseCode }, // 1006
        { [0x03, 0xF7], (int)FrameError.InvalidCloseCode }, // 1015
        { [0x0B, 0xB7], (int)FrameError.InvalidCloseCode }, // 2999
        { [0x13, 0x88], (int)FrameError.InvalidCloseCode }, // 5000
        { [0x03, 0xE8, 0xC3], (int)FrameError.InvalidCloseReason }, // 1000, a truncated 2-byte sequence
        { [0x03, 0xE8, 0xFF, 0x61], (int)FrameError.InvalidCloseReason },
        { [0x03, 0xE8, 0xED, 0xA0, 0x80], (int)FrameError.InvalidCloseReason }, // an encoded surrogate
    };

    [Theory]
    [MemberData(nameof(BadClosePayloads))]
    public void A_close_the_proxy_cannot_read_is_an_error_whole_whatever_the_chunking(byte[] payload, int expected)
    {
        foreach (uint? mask in new uint?[] { null, Mask })
        {
            var before = WireFrame.Text("before", mask: mask).ToBytes();
            var bytes = WireFrame.Concat([WireFrame.Text("before", mask: mask), new WireFrame(true, 0, WebSocketOpcode.Close, payload, mask)]);
            for (var split = before.Length; split <= bytes.Length; split++)
            {
                var caller = new ScannerCaller();
                caller.Feed(bytes.AsSpan(0, split));
                caller.Feed(bytes.AsSpan(split));

                Assert.Equal((FrameError)expected, caller.Error);
                Assert.Equal(before.Length, caller.ErrorAt);
                Assert.Equal(before, caller.Output.ToArray());
            }
        }
    }

    [Theory]
    [InlineData(1000, "")]
    [InlineData(1001, "going away")]
    [InlineData(1012, "")]
    [InlineData(1014, "")]
    [InlineData(3000, "")]
    [InlineData(4999, "déjà vu ✓")]
    public void A_valid_close_is_handed_over_as_a_control_frame(int code, string reason)
    {
        var close = WireFrame.Close((ushort)code, reason, Mask).ToBytes();
        var empty = new WireFrame(true, 0, WebSocketOpcode.Close, [], Mask).ToBytes();
        var caller = new ScannerCaller();

        caller.Feed([.. close, .. empty]);

        Assert.Null(caller.Error);
        Assert.Equal(2, caller.Controls.Count);
        Assert.Equal([.. close, .. empty], caller.Output.ToArray());
    }
}
