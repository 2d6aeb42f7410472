namespace ReaperProxy.Benchmarks;

/// <summary>
/// Stands in for Kestrel's client stream on the write side: copies each write into a scratch buffer (as
/// a socket send copies into the kernel) and counts it, so the pass-through baseline touches the bytes
/// once, like the real one.
/// </summary>
public sealed class CountingStream : Stream
{
    private readonly byte[] _scratch = new byte[64 * 1024];

    public long Written { get; private set; }

    public override bool CanRead => false;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        for (var offset = 0; offset < buffer.Length; offset += _scratch.Length)
        {
            var slice = buffer.Slice(offset, Math.Min(_scratch.Length, buffer.Length - offset));
            slice.CopyTo(_scratch);
        }

        Written += buffer.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>
/// Stands in for Kestrel's client stream on the read side: serves a pre-built buffer of whole frames
/// over and over, synchronously. A read never crosses the end of the buffer, so one pass is one
/// benchmark operation; a zero-byte read completes at once (data is always there).
/// </summary>
public sealed class ReplayStream(byte[] data) : Stream
{
    private int _position;

    public override bool CanRead => true;

    public override bool CanWrite => false;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        new(Read(buffer.Span));

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override int Read(Span<byte> destination)
    {
        var count = Math.Min(destination.Length, data.Length - _position);
        data.AsSpan(_position, count).CopyTo(destination);
        _position += count;
        if (_position == data.Length)
        {
            _position = 0;
        }

        return count;
    }
}
