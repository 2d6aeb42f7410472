using System.Buffers;
using System.IO.Pipelines;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// Stands in for the client-side stream Kestrel hands out on a WebSocket upgrade. The test plays the
/// client: <see cref="Send"/> puts bytes on the wire toward the proxy (the relay reads them), and
/// <see cref="Received"/> is everything the relay wrote toward the client.
/// </summary>
/// <remarks>
/// Like Kestrel's stream, a zero-byte read waits until data is there (or the stream ends) and then
/// returns 0 without consuming anything; a read honours its cancellation token. Writes complete
/// synchronously, so after a call into the relay returns, what it wrote is already visible.
/// </remarks>
internal sealed class TestClientStream : Stream
{
    private readonly Pipe _fromClient = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
    private readonly Lock _gate = new();
    private readonly ArrayBufferWriter<byte> _toClient = new();
    private readonly Random? _segmenter;
    private TaskCompletionSource? _writeGate;
    private int _heldWrites;
    private int _readsInFlight;

    /// <param name="segmenter">When set, each read returns a random 1..1500 bytes of what is there, as TCP segments would.</param>
    public TestClientStream(Random? segmenter = null) => _segmenter = segmenter;

    /// <summary>Everything the relay wrote toward the client so far.</summary>
    public byte[] Received
    {
        get
        {
            lock (_gate)
            {
                return _toClient.WrittenSpan.ToArray();
            }
        }
    }

    /// <summary>How many write calls reached the client stream.</summary>
    public int WriteCount { get; private set; }

    public bool IsDisposed { get; private set; }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>The client sends bytes toward the proxy.</summary>
    public void Send(ReadOnlySpan<byte> bytes)
    {
        _fromClient.Writer.Write(bytes);

        // With no pause threshold the flush never waits for the reader.
        var flush = _fromClient.Writer.FlushAsync();
        if (!flush.IsCompleted)
        {
            throw new InvalidOperationException("the client pipe unexpectedly applied back-pressure");
        }
    }

    /// <summary>The client closes its side (TCP FIN).</summary>
    public void EndOfStream() => _fromClient.Writer.Complete();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Interlocked.Increment(ref _readsInFlight) != 1)
        {
            // Kestrel's own complaint when a wrapper overlaps reads.
            throw new InvalidOperationException("Reading is already in progress.");
        }

        try
        {
            var result = await _fromClient.Reader.ReadAsync(cancellationToken);
            var available = result.Buffer;
            var count = (int)Math.Min(available.Length, buffer.Length);
            if (count > 0 && _segmenter is not null)
            {
                count = Math.Min(count, _segmenter.Next(1, 1500));
            }

            available.Slice(0, count).CopyTo(buffer.Span);
            _fromClient.Reader.AdvanceTo(available.GetPosition(count));
            return count;
        }
        finally
        {
            Interlocked.Decrement(ref _readsInFlight);
        }
    }

    /// <summary>From now on writes wait, as toward a client whose buffers are full, until <see cref="ReleaseWrites"/>.</summary>
    public void HoldWrites()
    {
        lock (_gate)
        {
            _writeGate ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    /// <summary>Lets held writes (and later ones) complete.</summary>
    public void ReleaseWrites()
    {
        TaskCompletionSource? gate;
        lock (_gate)
        {
            gate = _writeGate;
            _writeGate = null;
        }

        gate?.TrySetResult();
    }

    /// <summary>Whether a write is waiting at the gate.</summary>
    public bool WriteHeld => Volatile.Read(ref _heldWrites) > 0;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (_writeGate is { } gate)
            {
                return WriteWhenReleasedAsync(gate, buffer, cancellationToken);
            }

            _toClient.Write(buffer.Span);
            WriteCount++;
        }

        return ValueTask.CompletedTask;
    }

    private async ValueTask WriteWhenReleasedAsync(TaskCompletionSource gate, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _heldWrites);
        try
        {
            await gate.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _heldWrites);
        }

        await WriteAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("the relay reads asynchronously");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("the relay writes asynchronously");

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        IsDisposed = true;
        base.Dispose(disposing);
    }
}
