namespace ReaperProxy.Probe.Protocol;

/// <summary>
/// A read-only view of a stream that hands out at most <c>bytesPerSecond</c>: each read takes at most a
/// tenth of a second's worth and waits until the rate allows it. With a small SO_RCVBUF below it, the
/// server sees what a slow but live client looks like: the TCP window opens only as fast as this reads.
/// </summary>
internal sealed class PacedStream(Stream inner, int bytesPerSecond, TimeProvider time) : Stream
{
    private readonly int _chunk = Math.Max(1, bytesPerSecond / 10);
    private readonly long _started = time.GetTimestamp();
    private long _handedOut;
    private volatile bool _unpaced;

    /// <summary>From now on, reads go at full speed (to find the end of a stream behind what is still queued).</summary>
    public void Unpace() => _unpaced = true;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_unpaced)
        {
            return await inner.ReadAsync(buffer, cancellationToken);
        }

        // Wait until the bytes handed out so far fit the rate.
        var due = TimeSpan.FromSeconds((double)_handedOut / bytesPerSecond);
        var wait = due - time.GetElapsedTime(_started);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, time, cancellationToken);
        }

        var n = await inner.ReadAsync(buffer[..Math.Min(buffer.Length, _chunk)], cancellationToken);
        _handedOut += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read asynchronously");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
