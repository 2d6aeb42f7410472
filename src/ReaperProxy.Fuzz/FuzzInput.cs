namespace ReaperProxy.Fuzz;

/// <summary>Reads a fuzz input as a program: small numbers and byte strings, zero once it runs out.</summary>
internal ref struct FuzzInput(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public readonly bool IsEmpty => _position >= _data.Length;

    public byte NextByte() => _position < _data.Length ? _data[_position++] : (byte)0;

    public ushort NextUInt16() => (ushort)((NextByte() << 8) | NextByte());

    /// <summary>Up to <paramref name="count"/> bytes (fewer at the end of the input).</summary>
    public ReadOnlySpan<byte> Take(int count)
    {
        var n = Math.Min(count, _data.Length - _position);
        var bytes = _data.Slice(_position, n);
        _position += n;
        return bytes;
    }

    /// <summary>Everything not read yet.</summary>
    public ReadOnlySpan<byte> Rest()
    {
        var bytes = _data[Math.Min(_position, _data.Length)..];
        _position = _data.Length;
        return bytes;
    }
}
