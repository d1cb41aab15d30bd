import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { amzDate, authorization, uriEncode, xmlBlocks, xmlDecode, xmlEscape, xmlText } from '../../src/storage/s3-client.js';
import { crc32Base64 } from '../../src/storage/s3-upload.js';

/**
 * pgbak's S3 client, its pure parts: SigV4 signatures against the worked examples of AWS's
 * documentation ("Signature Calculations for the Authorization Header", Amazon S3 API reference),
 * and the XML of S3's documents. The requests themselves run against MinIO and versitygw in
 * test/contract/s3-backend.test.ts.
 */

const KEYS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', region: 'us-east-1' };
const DATE = '20130524T000000Z';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const HOST = 'examplebucket.s3.amazonaws.com';
const signature = (auth: string) => /Signature=([0-9a-f]{64})$/.exec(auth)?.[1];

describe('SigV4 (AWS documentation examples)', () => {
  it('GET Object with a Range header', () => {
    const auth = authorization({
      ...KEYS,
      method: 'GET',
      path: '/test.txt',
      query: [],
      headers: { host: HOST, range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY, 'x-amz-date': DATE },
    });
    expect(auth).toContain('Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request');
    expect(auth).toContain('SignedHeaders=host;range;x-amz-content-sha256;x-amz-date');
    expect(signature(auth)).toBe('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  });

  it('PUT Object with a signed payload and a key that needs encoding', () => {
    const auth = authorization({
      ...KEYS,
      method: 'PUT',
      path: `/${uriEncode('test$file.text')}`,
      query: [],
      headers: {
        date: 'Fri, 24 May 2013 00:00:00 GMT',
        host: HOST,
        'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
        'x-amz-date': DATE,
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      },
    });
    expect(signature(auth)).toBe('98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
  });

  it('GET Bucket lifecycle (a bare subresource)', () => {
    const auth = authorization({
      ...KEYS,
      method: 'GET',
      path: '/',
      query: [['lifecycle', '']],
      headers: { host: HOST, 'x-amz-content-sha256': EMPTY, 'x-amz-date': DATE },
    });
    expect(signature(auth)).toBe('fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
  });

  it('GET Bucket (list objects): query parameters sorted by name', () => {
    const auth = authorization({
      ...KEYS,
      method: 'GET',
      path: '/',
      query: [
        ['prefix', 'J'],
        ['max-keys', '2'],
      ],
      headers: { host: HOST, 'x-amz-content-sha256': EMPTY, 'x-amz-date': DATE },
    });
    expect(signature(auth)).toBe('34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  });

  it('refuses to sign without x-amz-date and the payload hash; dates and encoding as SigV4 wants them', () => {
    expect(() => authorization({ ...KEYS, method: 'GET', path: '/', query: [], headers: { host: HOST } })).toThrow(/x-amz-date/);
    expect(amzDate(new Date('2013-05-24T00:00:00.123Z'))).toBe(DATE);
    expect(uriEncode("a b/c!'()*~_-.")).toBe('a%20b%2Fc%21%27%28%29%2A~_-.');
  });
});

describe("S3's XML", () => {
  const page = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<Contents><Key>backups/a&amp;b.dump</Key><LastModified>2026-12-06T01:02:03.000Z</LastModified><Size>42</Size></Contents>
<Contents><Key>backups/c&lt;d&#x20;e&#39;.dump</Key><Size>0</Size></Contents><NextContinuationToken>tok/en=</NextContinuationToken><Marker/></ListBucketResult>`;

  it('reads each element of a listing, entities decoded, and the page fields', () => {
    const contents = xmlBlocks(page, 'Contents');
    expect(contents.map((c) => xmlText(c, 'Key'))).toEqual(['backups/a&b.dump', "backups/c<d e'.dump"]);
    expect(contents.map((c) => xmlText(c, 'Size'))).toEqual(['42', '0']);
    expect(xmlText(contents[1]!, 'LastModified')).toBeUndefined();
    expect(xmlText(page, 'IsTruncated')).toBe('true');
    expect(xmlText(page, 'NextContinuationToken')).toBe('tok/en=');
    expect(xmlText(page, 'Marker')).toBe('');
  });

  it('does not take <VersionId> for <Version> or <Upload> for <UploadId>', () => {
    const versions =
      '<ListVersionsResult><Version><Key>k</Key><VersionId>v1</VersionId></Version><DeleteMarker><Key>k</Key><VersionId>m1</VersionId></DeleteMarker></ListVersionsResult>';
    expect(xmlBlocks(versions, 'Version').map((v) => xmlText(v, 'VersionId'))).toEqual(['v1']);
    expect(xmlBlocks(versions, 'DeleteMarker').map((v) => xmlText(v, 'VersionId'))).toEqual(['m1']);
    expect(xmlBlocks('<R><UploadId>x</UploadId></R>', 'Upload')).toEqual([]);
  });

  it('escapes what it writes and decodes it back', () => {
    const text = `"quoted" <etag> & 'more'`;
    expect(xmlEscape(text)).not.toMatch(/[<>"']|&(?!(lt|gt|amp|quot|apos);)/);
    expect(xmlDecode(xmlEscape(text))).toBe(text);
  });
});

describe('x-amz-checksum-crc32', () => {
  it('is the base64 of the CRC32 (IEEE) in four big-endian bytes, and chains over pieces', () => {
    // The check value of CRC-32/ISO-HDLC: "123456789" → 0xCBF43926.
    expect(crc32Base64(zlib.crc32(Buffer.from('123456789')))).toBe('y/Q5Jg==');
    expect(crc32Base64(zlib.crc32(Buffer.from('56789'), zlib.crc32(Buffer.from('1234'))))).toBe('y/Q5Jg==');
    // A CRC with the top bit set is written unsigned; the empty part's is zero.
    expect(crc32Base64(0xffffffff)).toBe('/////w==');
    expect(crc32Base64(zlib.crc32(Buffer.alloc(0)))).toBe('AAAAAA==');
  });
});
