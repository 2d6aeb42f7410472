using System.Runtime.CompilerServices;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

// The backend→client direction: YARP's response loop writes the backend's bytes here. Writes from YARP
// and from the heartbeat (pings, Close toward the client) are serialised by one lock.
internal sealed partial class RelayConnection
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private FrameScanner _b2c;
    private byte[]? _b2cHeld;
    private int _b2cHeldCount;
    private byte[]? _controlOut;
    private CancellationTokenSource? _writeCts;
    private CancellationToken _writeCallerToken;
    private volatile bool _inWrite;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var inner = _inner ?? throw new InvalidOperationException("The relay is not attached.");
        await _writeLock.WaitAsync(cancellationToken);
        _inWrite = true;
        try
        {
            var token = WriteToken(cancellationToken);
            var now = _time.GetTimestamp();
            Volatile.Write(ref _backendLastHeard, now);
            Volatile.Write(ref _writeStartedAt, now);
            var consumed = 0;
            if (_b2cHeldCount > 0)
            {
                consumed = await CompleteHeldUnitAsync(inner, buffer, now, token);
            }

            if (consumed < buffer.Length)
            {
                var heldAt = await ForwardFromBackendAsync(inner, buffer[consumed..], now, token);
                if (heldAt >= 0)
                {
                    _b2cHeld ??= new byte[FrameHeader.MaxControlFrame * 2];
                    var rest = buffer.Span[(consumed + heldAt)..];
                    rest.CopyTo(_b2cHeld);
                    _b2cHeldCount = rest.Length;
                }
            }

            await SendFramesForClientAsync(inner, token);
        }
        catch (OperationCanceledException) when (_dropToClient && !cancellationToken.IsCancellationRequested)
        {
            // The client was reaped while a write to it was stuck: abandon that write and keep
            // relaying the backend's side (its answer to our Close) until the connection is finished.
        }
        finally
        {
            _inWrite = false;
            _writeLock.Release();
        }
    }

    // A header or control frame split across YARP's writes: complete it in the held buffer, then go on
    // with the rest of this write. Returns how many bytes of buffer were used up.
    private async ValueTask<int> CompleteHeldUnitAsync(Stream inner, ReadOnlyMemory<byte> buffer, long now, CancellationToken token)
    {
        var held = _b2cHeldCount;
        var take = Math.Min(buffer.Length, _b2cHeld!.Length - held);
        buffer.Span[..take].CopyTo(_b2cHeld.AsSpan(held));
        var staged = new ReadOnlyMemory<byte>(_b2cHeld, 0, held + take);
        _b2cHeldCount = 0;
        var heldAt = await ForwardFromBackendAsync(inner, staged, now, token);
        if (heldAt < 0)
        {
            return take;
        }

        if (heldAt >= held)
        {
            // The unit that is still incomplete began in this write: scan it again from there.
            return heldAt - held;
        }

        // Still incomplete (this write was too short): keep what we have.
        var remaining = held + take - heldAt;
        _b2cHeld.AsSpan(heldAt, remaining).CopyTo(_b2cHeld);
        _b2cHeldCount = remaining;
        return take;
    }

    // Forwards data to the client frame by frame. Returns the offset of a trailing partial unit the
    // caller must hold, or -1.
    private async ValueTask<int> ForwardFromBackendAsync(Stream inner, ReadOnlyMemory<byte> data, long now, CancellationToken token)
    {
        var runStart = 0;
        var pos = 0;
        while (true)
        {
            if (_passThrough)
            {
                await SendToClientAsync(inner, data[runStart..], token);
                return -1;
            }

            var stop = _b2c.Scan(data.Span, pos, HasFrameForClient, out var run, out var control, out var error);
            pos += run;
            if (_b2c.SawDataFrame)
            {
                _b2c.SawDataFrame = false;
                Volatile.Write(ref _lastData, now);
            }

            switch (stop)
            {
                case ScanStop.End:
                    await SendToClientAsync(inner, data[runStart..pos], token);
                    return -1;

                case ScanStop.Held:
                    await SendToClientAsync(inner, data[runStart..pos], token);
                    return pos;

                case ScanStop.Boundary:
                    await SendToClientAsync(inner, data[runStart..pos], token);
                    runStart = pos;
                    await SendFramesForClientAsync(inner, token);
                    if (pos == data.Length)
                    {
                        return -1;
                    }

                    break;

                case ScanStop.Control:
                    var length = (int)control.FrameLength;
                    if (OnControlFromBackend(control, data.Span.Slice(pos, length), now))
                    {
                        pos += length;
                        if (control.Opcode == WebSocketOpcode.Close)
                        {
                            // The Close is the last frame the client may get: send it now and mark it sent.
                            await SendToClientAsync(inner, data[runStart..pos], token);
                            runStart = pos;
                            OnCloseForwarded(Leg.Client);
                        }
                    }
                    else
                    {
                        await SendToClientAsync(inner, data[runStart..pos], token);
                        pos += length;
                        runStart = pos;
                    }

                    break;

                case ScanStop.Error:
                    await SendToClientAsync(inner, data[runStart..pos], token);
                    if (OnProtocolError(Leg.Backend, error))
                    {
                        runStart = pos;
                        break;
                    }

                    return -1;

                default:
                    throw new InvalidOperationException($"unexpected scan stop {stop}");
            }
        }
    }

    // Returns whether to forward the control frame to the client.
    private bool OnControlFromBackend(FrameHeader header, ReadOnlySpan<byte> frame, long now)
    {
        if (IsOurPong(header, frame, out var sentAt))
        {
            RecordPong(Leg.Backend, sentAt, now);
            return false;
        }

        if (header.Opcode == WebSocketOpcode.Close)
        {
            Span<byte> payload = stackalloc byte[FrameHeader.MaxControlPayload];
            var length = header.CopyPayload(frame, payload);
            return OnCloseFrom(Leg.Backend, FrameWriter.ReadCloseCode(payload[..length]), now);
        }

        return true;
    }

    private ValueTask SendToClientAsync(Stream inner, ReadOnlyMemory<byte> bytes, CancellationToken token)
    {
        if (bytes.IsEmpty || _dropToClient)
        {
            return ValueTask.CompletedTask;
        }

        return inner.WriteAsync(bytes, token);
    }

    // Sends what the heartbeat has for the client (a Close, else a ping) if the stream toward the
    // client is at a frame boundary. Must hold the write lock.
    private async ValueTask SendFramesForClientAsync(Stream inner, CancellationToken token)
    {
        if (!_b2c.AtBoundary || !HasFrameForClient)
        {
            return;
        }

        _controlOut ??= new byte[FrameHeader.MaxControlFrame];
        int length;
        var isClose = _closeToClientPending;
        if (isClose)
        {
            _closeToClientPending = false;
            length = _closeToClientCode == CloseNoStatus
                ? FrameWriter.WriteControl(_controlOut, WebSocketOpcode.Close, [], mask: false)
                : FrameWriter.WriteClose(_controlOut, _closeToClientCode, _closeToClientText, mask: false);
        }
        else
        {
            if (_dropToClient)
            {
                _pingToClientWanted = false;
                return;
            }

            // The deadline moves to the send before the flag clears, so a tick never sees neither.
            OnPingSent(Leg.Client);
            _pingToClientWanted = false;
            length = WritePing(_controlOut, mask: false);
        }

        if (!_dropToClient)
        {
            await inner.WriteAsync(_controlOut.AsMemory(0, length), token);
        }

        if (isClose)
        {
            OnCloseForwarded(Leg.Client);
        }
    }

    /// <summary>Sends a pending frame toward the client now, unless YARP is writing (it will, at its next boundary).</summary>
    private async Task TrySendForClientAsync()
    {
        if (_inner is not { } inner || !_writeLock.Wait(0))
        {
            return;
        }

        try
        {
            await SendFramesForClientAsync(inner, _writeCts?.Token ?? CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The client connection is failing; YARP's own loop reports it.
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async ValueTask TellClientBackendWentAwayAsync(Stream inner)
    {
        lock (_gate)
        {
            if (_policy.Mode != Configuration.HeartbeatMode.Enforce || _passThrough || _terminating || _closeFromBackend || _closeSentToClient || _dropToClient)
            {
                return;
            }

            // The reason stays open: YARP's error feature tells an orderly end (backend_close) from a
            // failure (backend_error) when the request returns.
            _terminating = true;
            QueueClose(Leg.Client, CloseGoingAway, "backend went away");
        }

        Log.BackendWentAway(_logger, RouteId, ClusterId, Destination, ClientAddress);

        if (!await _writeLock.WaitAsync(TimeSpan.FromMilliseconds(200)))
        {
            return;
        }

        try
        {
            await SendFramesForClientAsync(inner, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromMilliseconds(500));
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or TimeoutException)
        {
            // The client is failing too; nothing more to tell it.
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private CancellationToken WriteToken(CancellationToken callerToken)
    {
        if (_writeCts is null || (callerToken != _writeCallerToken && callerToken.CanBeCanceled))
        {
            var previous = _writeCts;
            _writeCallerToken = callerToken;
            _writeCts = CancellationTokenSource.CreateLinkedTokenSource(callerToken);
            previous?.Dispose();
        }

        return _writeCts.Token;
    }
}
