using ReaperProxy.Fuzz;

namespace ReaperProxy.Tests.Fuzz;

/// <summary>Writes relay fuzz programs (the input language <see cref="RelayTarget"/> decodes), for the seed corpus.</summary>
internal sealed class FuzzProgram
{
    private readonly List<byte> _bytes;

    /// <param name="config">Mode (low 3 bits: 0-5 Enforce, 6 Observe, 7 Off), legs (bits 3-4), YARP's read buffer (bits 5-7).</param>
    /// <param name="flags">Bit 0: an IdleTimeout of 60 s.</param>
    public FuzzProgram(byte config = 0, byte flags = 0) => _bytes = [config, flags];

    public static byte Config(string mode = "Enforce", string legs = "Both", int readBuffer = 0) =>
        (byte)((mode switch { "Observe" => 6, "Off" => 7, _ => 0 }) | ((legs switch { "Client" => 1, "Backend" => 2, _ => 0 }) << 3) | (readBuffer << 5));

    public FuzzProgram Client(byte[] bytes) => Chunks(RelayOp.ClientBytes, bytes);

    public FuzzProgram Backend(byte[] bytes) => Chunks(RelayOp.BackendBytes, bytes);

    /// <summary>The client sends its bytes cut at the given lengths (the rest in one go).</summary>
    public FuzzProgram ClientSplit(byte[] bytes, params int[] cuts) => Split(RelayOp.ClientBytes, bytes, cuts);

    public FuzzProgram BackendSplit(byte[] bytes, params int[] cuts) => Split(RelayOp.BackendBytes, bytes, cuts);

    /// <summary>Advances the clock by <paramref name="milliseconds"/> (a multiple of 100, at most 25.6 s) and ticks.</summary>
    public FuzzProgram Tick(int milliseconds) => Op(RelayOp.Tick, (byte)((milliseconds / 100) - 1));

    public FuzzProgram Ticks(int milliseconds, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Tick(milliseconds);
        }

        return this;
    }

    public FuzzProgram ClientPong(byte split = 255) => Op(RelayOp.ClientPong, 0x11, 0x22, split);

    public FuzzProgram BackendPong(byte split = 255) => Op(RelayOp.BackendPong, split);

    public FuzzProgram ClientClose(ushort code) => Op(RelayOp.ClientClose, (byte)(code >> 8), (byte)code);

    public FuzzProgram BackendClose(ushort code) => Op(RelayOp.BackendClose, (byte)(code >> 8), (byte)code);

    public FuzzProgram ClientStopsReading() => Op(RelayOp.ClientStopsReading);

    public FuzzProgram ClientEnd() => Op(RelayOp.ClientEnd);

    public FuzzProgram BackendEnd() => Op(RelayOp.BackendEnd);

    public FuzzProgram Shutdown() => Op(RelayOp.Shutdown);

    public byte[] ToBytes() => [.. _bytes];

    private FuzzProgram Op(RelayOp op, params byte[] arguments)
    {
        _bytes.Add((byte)op);
        _bytes.AddRange(arguments);
        return this;
    }

    private FuzzProgram Chunks(RelayOp op, byte[] bytes)
    {
        for (var offset = 0; offset < bytes.Length; offset += 256)
        {
            var n = Math.Min(256, bytes.Length - offset);
            Op(op, (byte)(n - 1));
            _bytes.AddRange(bytes.AsSpan(offset, n));
        }

        return this;
    }

    private FuzzProgram Split(RelayOp op, byte[] bytes, int[] cuts)
    {
        var offset = 0;
        foreach (var cut in cuts)
        {
            var n = Math.Min(cut, bytes.Length - offset);
            if (n > 0)
            {
                Chunks(op, bytes[offset..(offset + n)]);
                offset += n;
            }
        }

        return Chunks(op, bytes[offset..]);
    }
}
