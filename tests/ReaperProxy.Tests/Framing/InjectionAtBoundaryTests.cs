using Xunit.Abstractions;

namespace ReaperProxy.Tests.Framing;

/// <summary>
/// The relay injects its pings by scanning with <c>stopAtBoundary</c> and writing a frame when the
/// scanner stops. Whatever the moment of the request and the chunking, the result must be a valid
/// frame sequence whose other frames are exactly the input's (RFC 6455 §5.4: control frames may sit
/// between the fragments of a message, never inside a frame).
/// </summary>
public class InjectionAtBoundaryTests(ITestOutputHelper output)
{
    private static readonly byte[] s_markerPayload = "ReaperProxy-MARK"u8.ToArray();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_injection_requested_at_any_split_point_lands_between_frames(bool masked)
    {
        var marker = WireFrame.Ping(s_markerPayload, masked ? 0x01020304u : null);
        uint? m = masked ? 0xCAFEBABE : null;
        List<WireFrame> frames =
        [
            WireFrame.Binary(126, fin: false, mask: m),
            WireFrame.Pong([5], m),
            WireFrame.Continuation(65536, fin: false, mask: m),
            WireFrame.Continuation(3, fin: true, mask: m),
            WireFrame.Text("x", mask: m),
            WireFrame.Ping(new byte[125], m),
        ];
        var bytes = WireFrame.Concat(frames);
        var boundaries = new HashSet<int>();
        var offset = 0;
        foreach (var frame in frames)
        {
            boundaries.Add(offset);
            offset += frame.ToBytes().Length;
        }

        boundaries.Add(offset);

        for (var split = 0; split <= bytes.Length; split++)
        {
            // Verifying rather than collecting: a 64 KiB stream at every split point.
            var caller = ScannerCaller.Verifying(bytes, marker.ToBytes());
            caller.Feed(bytes.AsSpan(0, split));
            caller.RequestInjection();
            caller.Feed(bytes.AsSpan(split));

            Assert.True(caller.Error is null && caller.HeldCount == 0, $"split {split}: error {caller.Error}, held {caller.HeldCount}");
            Assert.True(caller.MismatchAt is null && caller.Forwarded == bytes.Length, $"split {split}: input bytes changed");
            var at = Assert.Single(caller.InjectedAt);
            Assert.True(boundaries.Contains(at), $"split {split}: injected at input offset {at}, inside a frame");

            // Not later than the end of the frame the split cut (or before it, when the cut frame's
            // header or control frame was still held and so not yet forwarded).
            Assert.InRange(at, boundaries.Where(b => b <= split).Max(), boundaries.Where(b => b >= split).Min());
        }
    }

    [Fact]
    public void Injections_at_random_moments_in_random_streams_never_land_inside_a_frame()
    {
        const int Iterations = 300;
        var totalInjected = 0;
        Seeded.Run(Iterations, output, (random, _) =>
        {
            var masked = random.Next(2) == 0;
            var marker = WireFrame.Ping(s_markerPayload, masked ? 0x0BADF00Du : null);
            var frames = RandomFrames.Stream(random, masked);
            var bytes = WireFrame.Concat(frames);
            // A caller asked before every scan must sometimes say no, or it injects forever at one
            // boundary (as the relay would if it never cleared its "ping wanted" flag).
            var odds = random.Next(2, 8);
            var caller = new ScannerCaller(marker.ToBytes(), injectBeforeScan: () => random.Next(odds) == 0);
            var offset = 0;
            foreach (var chunk in RandomFrames.Chunks(random, bytes.Length))
            {
                if (random.Next(odds) == 0)
                {
                    caller.RequestInjection();
                }

                caller.Feed(bytes.AsSpan(offset, chunk));
                offset += chunk;
            }

            AssertInputFramesWithMarkers(frames, caller, marker, "random");
            totalInjected += caller.Injected;
        });

        // The property means nothing if nothing was injected.
        Assert.True(totalInjected > Iterations, $"only {totalInjected} injections in {Iterations} streams");
    }

    private static void AssertInputFramesWithMarkers(List<WireFrame> input, ScannerCaller caller, WireFrame marker, string context)
    {
        Assert.True(caller.Error is null, $"{context}: scanner error {caller.Error}");
        Assert.True(caller.HeldCount == 0, $"{context}: bytes still held");

        // A frame landing inside another would make this throw or shift every later frame.
        var back = ReferenceFrameReader.ReadAll(caller.Output);
        var markerBytes = marker.ToBytes();
        var markers = back.Count(f => f.ToBytes().AsSpan().SequenceEqual(markerBytes));
        Assert.True(markers == caller.Injected, $"{context}: {caller.Injected} injected, {markers} found whole");
        var others = back.Where(f => !f.ToBytes().AsSpan().SequenceEqual(markerBytes)).Select(f => f.ToBytes());
        Assert.Equal(input.Select(f => f.ToBytes()), others);
        Assert.Equal(WireFrame.Concat(input).Length + (caller.Injected * markerBytes.Length), caller.Output.Length);
    }
}
