namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>What a raw peer read until its connection ended (or a bound passed).</summary>
public sealed record RawFramesRead(IReadOnlyList<RawFrame> Frames, bool Ended)
{
    public override string ToString() =>
        $"{Frames.Count} frame(s) [{string.Join(", ", Frames)}], connection {(Ended ? "ended" : "still open")}";
}

/// <summary>Helpers for raw peers: the backend side of <c>/raw</c> and reading every frame that arrives.</summary>
public static class RawFrames
{
    /// <summary>Writes <paramref name="bytes"/> in one write and flushes (the raw backend's stream).</summary>
    public static async Task WriteRawAsync(this Stream stream, ReadOnlyMemory<byte> bytes)
    {
        await stream.WriteAsync(bytes);
        await stream.FlushAsync();
    }

    /// <summary>
    /// Reads every frame until the stream ends (FIN or reset) or <paramref name="timeout"/> passes,
    /// whichever comes first. Bounded in time; never throws for a timeout or a reset.
    /// </summary>
    public static async Task<RawFramesRead> ReadUntilEndAsync(Func<TimeSpan?, Task<RawFrame?>> receive, TimeSpan timeout)
    {
        var frames = new List<RawFrame>();
        var deadline = DateTime.UtcNow + timeout;
        for (var i = 0; i < 10_000; i++)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                return new RawFramesRead(frames, Ended: false);
            }

            RawFrame? frame;
            try
            {
                frame = await receive(left);
            }
            catch (TimeoutException)
            {
                return new RawFramesRead(frames, Ended: false);
            }
            catch (IOException)
            {
                return new RawFramesRead(frames, Ended: true);
            }

            if (frame is null)
            {
                return new RawFramesRead(frames, Ended: true);
            }

            frames.Add(frame);
        }

        return new RawFramesRead(frames, Ended: false);
    }

    /// <summary>Reads every frame a raw client gets until its connection ends or <paramref name="timeout"/> passes.</summary>
    public static Task<RawFramesRead> ReadUntilEndAsync(this RawWebSocket socket, TimeSpan timeout) =>
        ReadUntilEndAsync(socket.ReceiveFrameAsync, timeout);

    /// <summary>Reads every frame a raw backend gets until its connection ends or <paramref name="timeout"/> passes.</summary>
    public static Task<RawFramesRead> ReadUntilEndAsync(this RawFrameReader reader, TimeSpan timeout) =>
        ReadUntilEndAsync(reader.ReceiveFrameAsync, timeout);
}
