using System.Buffers;
using System.Threading.Tasks.Sources;

namespace ReaperProxy.Fuzz;

/// <summary>
/// Stands in for Kestrel's client stream on the pump: reads complete at once when bytes are there and
/// otherwise when <see cref="Send"/> brings some (a zero-byte read waits for data and consumes nothing);
/// writes land in <see cref="Received"/>, or wait while writes are held (a client that stopped reading).
/// Overlapping reads are refused as Kestrel refuses them.
/// </summary>
internal sealed class FuzzClientStream : Stream, IValueTaskSource<int>
{
    private readonly ArrayBufferWriter<byte> _received = new();
    private byte[] _incoming = new byte[256];
    private int _incomingStart;
    private int _incomingEnd;
    private bool _eof;
    private ManualResetValueTaskSourceCore<int> _read = new() { RunContinuationsAsynchronously = true };
    private bool _readPending;
    private Memory<byte> _readBuffer;
    private CancellationTokenRegistration _readCancellation;
    private TaskCompletionSource? _writeGate;

    public ReadOnlySpan<byte> Received => _received.WrittenSpan;

    public bool ReadPending => _readPending;

    public bool WritesHeld => _writeGate is not null;

    public int HeldWrites { get; private set; }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>The client puts bytes on the wire toward the proxy.</summary>
    public void Send(ReadOnlySpan<byte> bytes)
    {
        if (_incomingEnd + bytes.Length > _incoming.Length)
        {
            var grown = new byte[Math.Max(_incoming.Length * 2, _incomingEnd - _incomingStart + bytes.Length)];
            _incoming.AsSpan(_incomingStart, _incomingEnd - _incomingStart).CopyTo(grown);
            _incomingEnd -= _incomingStart;
            _incomingStart = 0;
            _incoming = grown;
        }

        bytes.CopyTo(_incoming.AsSpan(_incomingEnd));
        _incomingEnd += bytes.Length;
        if (_readPending && bytes.Length > 0)
        {
            CompleteRead(CopyOut(_readBuffer.Span));
        }
    }

    /// <summary>The client's TCP FIN.</summary>
    public void EndOfStream()
    {
        _eof = true;
        if (_readPending)
        {
            CompleteRead(0);
        }
    }

    // Continuations run inline on release (on the pump), never on the thread pool: a run stays deterministic.
    public void HoldWrites() => _writeGate ??= new TaskCompletionSource(TaskCreationOptions.None);

    public void ReleaseWrites()
    {
        var gate = _writeGate;
        _writeGate = null;
        gate?.TrySetResult();
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        PropertyViolation.Check(!_readPending, "relay: a second read on the client stream while one is pending (Kestrel: \"Reading is already in progress\")");
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        if (_incomingEnd > _incomingStart || _eof)
        {
            return new ValueTask<int>(CopyOut(buffer.Span));
        }

        _readPending = true;
        _readBuffer = buffer;
        _read.Reset();
        _readCancellation = cancellationToken.UnsafeRegister(static s => ((FuzzClientStream)s!).CancelRead(), this);
        return new ValueTask<int>(this, _read.Version);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        if (_writeGate is { } gate)
        {
            return WriteWhenReleasedAsync(gate, buffer, cancellationToken);
        }

        _received.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    private async ValueTask WriteWhenReleasedAsync(TaskCompletionSource gate, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        HeldWrites++;
        try
        {
            await gate.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            HeldWrites--;
        }

        await WriteAsync(buffer, cancellationToken);
    }

    private int CopyOut(Span<byte> destination)
    {
        var n = Math.Min(destination.Length, _incomingEnd - _incomingStart);
        _incoming.AsSpan(_incomingStart, n).CopyTo(destination);
        _incomingStart += n;
        return n;
    }

    private void CompleteRead(int result)
    {
        _readPending = false;
        _readBuffer = default;
        _readCancellation.Dispose();
        _read.SetResult(result);
    }

    private void CancelRead()
    {
        if (_readPending)
        {
            _readPending = false;
            _readBuffer = default;
            _read.SetException(new OperationCanceledException("the read was cancelled"));
        }
    }

    int IValueTaskSource<int>.GetResult(short token) => _read.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _read.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _read.OnCompleted(continuation, state, token, flags);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("the relay reads asynchronously");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("the relay writes asynchronously");

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
